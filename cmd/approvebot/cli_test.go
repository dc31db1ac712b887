package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/approvebot/approvebot/bot"
)

func TestCheckPrintsSummary(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), bot.SystemClock{}, []string{"check", "--config", h.config}, h.getenv, &out, &errOut); err != nil {
		t.Fatalf("check: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{"treasury-ops", "C0TREASURY", "approve-large-transfer", "payments-agent", "config OK"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), callerToken) || strings.Contains(out.String(), botToken) {
		t.Fatal("check printed a secret")
	}
}

func TestCheckNamesTheBadKeyAndLine(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	bad := strings.Replace(baseConfig, "      channels: [C0TREASURY]", "      chanels: [C0TREASURY]", 1)
	if err := os.WriteFile(h.config, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), bot.SystemClock{}, []string{"check", "--config", h.config}, h.getenv, &out, &errOut)
	line := 1 + strings.Count(bad[:strings.Index(bad, "chanels")], "\n")
	if err == nil || !strings.Contains(err.Error(), `unknown key "chanels"`) || !strings.Contains(err.Error(), fmt.Sprintf("line %d:", line)) {
		t.Fatalf("check of a misspelt key: %v", err)
	}
	delete(h.env, "SLACK_SIGNING_SECRET")
	err = run(context.Background(), bot.SystemClock{}, []string{"check", "--config", filepath.Join(h.dir, "missing.yaml")}, h.getenv, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("check of a missing file: %v", err)
	}
}

func TestServeRefusesUnsetVariable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	delete(h.env, "SLACK_SIGNING_SECRET")
	var out, errOut bytes.Buffer
	err := run(context.Background(), bot.SystemClock{}, []string{"serve", "--config", h.config}, h.getenv, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "SLACK_SIGNING_SECRET") {
		t.Fatalf("serve with an unset secret: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	for _, args := range [][]string{nil, {"frobnicate"}, {"audit"}, {"audit", "frob", "--config", "x"}, {"teams", "package"}} {
		err := run(context.Background(), bot.SystemClock{}, args, func(string) (string, bool) { return "", false }, &out, &errOut)
		// A usage mistake exits 2, as the usage text says; 1 is for
		// everything that went wrong once the command ran.
		if err == nil || exitCode(err) != 2 {
			t.Errorf("%v: want a usage error (exit 2), got %v", args, err)
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	h.await(h.submit(legacyBody("unrouted", "payroll"), auth()))
	r := h.do(http.MethodGet, "/metrics", nil, nil)
	for _, want := range []string{`approvebot_requests_total{schema="legacy"} 1`, `approvebot_resolutions_total{status="no_route"} 1`, "approvebot_pending_requests 0"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
