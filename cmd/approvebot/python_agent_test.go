package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
	"github.com/approvebot/approvebot/signing/signingtest"
)

// The agent side, end to end: integrations/agt/README.md's examples run as
// written, in python3, against a stand-in of AGT's govern (what AGT calls
// and does with the answer) and this real server; a click in the fake Slack
// decides, and the test reads what AGT would have recorded.

// agtConfig serves the README's examples: the default issuer, caller
// payments-agent, the legacy route for approve-large-transfer and the
// one-stage chain payments, version 7, both asking treasury-ops.
const agtConfig = configHead + `signing:
  key_file: ${DIR}/signing.key
admin:
  token: ${ADMIN_TOKEN}
delivery:
  timeout: ${DELIVERY_TIMEOUT}
approvers:
  treasury-ops:
    slack:
      channels: [C0TREASURY]
      users: [U0JANE, U0BOB]
routes:
  - match: {rule_name: approve-large-transfer}
    approvers: [treasury-ops]
    timeout: 5m
chains:
  payments:
    version: "7"
    stages:
      - approvers: [treasury-ops]
`

// agtChainOf prints the AGT chain definition for approvebot's chain
// payments, as an agent developer does: `approvebot agt chain --config FILE
// --chain payments`. The README's transport example loads it.
func agtChainOf(t *testing.T, h *harness) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args := []string{"agt", "chain", "--config", h.config, "--chain", "payments"}
	if err := run(context.Background(), bot.SystemClock{}, args, h.getenv, &stdout, &stderr); err != nil {
		t.Fatalf("approvebot agt chain: %v\n%s", err, stderr.String())
	}
	return stdout.Bytes()
}

// agtOutcome is what readme_example.py prints.
type agtOutcome struct {
	Result            *string `json:"result"`
	Denied            string  `json:"denied"`
	Approved          bool    `json:"approved"`
	Approver          string  `json:"approver"`
	Reason            string  `json:"reason"`
	ReasonCode        *string `json:"reason_code"`
	ApprovalRequestID *string `json:"approval_request_id"`
	PolicyDecisionID  *string `json:"policy_decision_id"`
	ExpiresAt         *string `json:"expires_at"`
	DecisionType      string  `json:"decision_type"`
}

type agtRun struct {
	out          agtOutcome
	stdout, logs string
	err          error
}

// agtProc is a running example: done holds its outcome once it has ended,
// and ended is cancelled then.
type agtProc struct {
	done  chan agtRun
	ended context.Context
}

// runExample starts README example kind ("transport" or "legacy") with its
// approval URL pointing at approvals.
func runExample(t *testing.T, h *harness, py, kind, approvals string, env ...string) *agtProc {
	t.Helper()
	dir := t.TempDir()
	if kind == "transport" {
		if err := os.WriteFile(filepath.Join(dir, "payments.agt-chain.json"), agtChainOf(t, h), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	script := filepath.Join(signingtest.PackageDir(), "tests", "readme_example.py")
	cmd := signingtest.Command(ctx, py, script, kind)
	cmd.Dir = dir
	cmd.Env = append(cmd.Env, "APPROVEBOT_URL="+approvals, "APPROVEBOT_JWKS_URL="+h.url+"/.well-known/jwks.json",
		"APPROVEBOT_TOKEN="+callerToken, "AGT_APPROVAL_STRICT=1")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ended, end := context.WithCancel(context.Background())
	p := &agtProc{done: make(chan agtRun, 1), ended: ended}
	go func() {
		defer cancel()
		err := cmd.Run()
		r := agtRun{stdout: stdout.String(), logs: stderr.String(), err: err}
		if err == nil {
			r.err = json.Unmarshal(stdout.Bytes(), &r.out)
		}
		p.done <- r
		end()
	}()
	return p
}

// clickWhenPosted waits for the example's request to reach Slack, checks
// that the message shows each of shows, and clicks action as Jane. The
// example ending first fails the test with its output.
func clickWhenPosted(t *testing.T, h *harness, p *agtProc, before int, action string, shows ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ended, 60*time.Second)
	defer cancel()
	var msg slackfake.Message
	err := h.slack.WaitFor(ctx, func() bool {
		msgs := h.slack.Messages()
		if len(msgs) > before {
			msg = msgs[before]
			return true
		}
		return false
	})
	if err != nil {
		if p.ended.Err() != nil {
			r := <-p.done
			t.Fatalf("the example ended before its request reached Slack: %v\nstdout: %s\nstderr: %s\nlogs:\n%s",
				r.err, r.stdout, r.logs, h.logs)
		}
		t.Fatalf("waiting for the example's message in Slack: %v\nlogs:\n%s", err, h.logs)
	}
	id := requestIDOf(t, msg)
	h.waitPosted(id, 1)
	text := blockText(msg) + msg.Text
	for _, s := range shows {
		if !strings.Contains(text, s) {
			t.Errorf("the message does not show %q: %s", s, text)
		}
	}
	if r := h.click("U0JANE", "C0TREASURY", msg.TS, action, id); r.status != http.StatusOK {
		t.Fatalf("click answered %d %s", r.status, r.body)
	}
	return id
}

func finished(t *testing.T, h *harness, p *agtProc) agtOutcome {
	t.Helper()
	select {
	case r := <-p.done:
		if r.err != nil {
			t.Fatalf("example: %v\nstdout: %s\nstderr: %s\nlogs:\n%s", r.err, r.stdout, r.logs, h.logs)
		}
		return r.out
	case <-time.After(2 * time.Minute):
		t.Fatalf("the example did not end\nlogs:\n%s", h.logs)
		return agtOutcome{}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}

// forgingProxy passes requests to approvebot and hands back its answers
// with the assertion's claims rewritten (sub: mallory) under the original
// signature, as a party between agent and approvebot could.
func forgingProxy(t *testing.T, h *harness) string {
	t.Helper()
	target, err := url.Parse(h.url)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(target)
	p.ModifyResponse = func(resp *http.Response) error {
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		var m map[string]any
		if json.Unmarshal(body, &m) == nil {
			if tok, ok := m["identity_assertion"].(string); ok {
				parts := strings.Split(tok, ".")
				claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
				var c map[string]any
				_ = json.Unmarshal(claims, &c)
				c["sub"] = "mallory@company.com"
				forged, _ := json.Marshal(c)
				m["identity_assertion"] = parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]
				m["approver"] = "mallory@company.com"
				body, _ = json.Marshal(m)
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL + "/v1/approvals"
}

// TestAGTTransportExample runs the README's schema 1.0 wiring: AGT's
// coordinator with the chain `approvebot agt chain` prints (Jane and Bob,
// by the emails the fake Slack has for U0JANE and U0BOB), and
// ApprovebotTransport. An approval reaches AGT as Jane's verified vote and
// the tool runs; a denial is Jane's recorded deny; a forged answer is no
// vote at all.
func TestAGTTransportExample(t *testing.T) {
	t.Parallel()
	py := signingtest.Python(t, "yaml")
	h := newHarness(t, agtConfig)
	h.start()
	approvals := h.url + "/v1/approvals"

	t.Run("approve", func(t *testing.T) {
		run := runExample(t, h, py, "transport", approvals)
		id := clickWhenPosted(t, h, run, len(h.slack.Messages()), "approve", "tool.invoke", "payments")
		out := finished(t, h, run)
		if out.Result == nil || *out.Result != "sent 5000 to ACME-123" || !out.Approved || out.Approver != "jane@company.com" ||
			out.ReasonCode == nil || *out.ReasonCode != "ok" || out.ApprovalRequestID == nil {
			t.Fatalf("AGT recorded %+v (request %v, reason code %v), want the tool run on Jane's verified approval of %s",
				out, deref(out.ApprovalRequestID), deref(out.ReasonCode), id)
		}
		// The request approvers saw, and now see approved, is the one AGT opened.
		h.waitClosed(*out.ApprovalRequestID, "Approved by Jane Doe")
	})

	// Ids are AGT's to choose, and a caller's clock may have no time zone.
	t.Run("AGT ids and a naive expiry", func(t *testing.T) {
		const rid, pid = "ar_01HZX3K9Q8W2V7N5M4B6C1D0EF", "pd_1"
		run := runExample(t, h, py, "transport", approvals, "AGT_IDS=ar="+rid+",pd="+pid, "AGT_NAIVE_TIME=1")
		clickWhenPosted(t, h, run, len(h.slack.Messages()), "approve", rid)
		out := finished(t, h, run)
		if out.Result == nil || !out.Approved || out.Approver != "jane@company.com" || deref(out.ReasonCode) != "ok" ||
			deref(out.ApprovalRequestID) != rid || deref(out.PolicyDecisionID) != pid ||
			strings.ContainsAny(deref(out.ExpiresAt)[10:], "+Z") {
			t.Fatalf("AGT recorded %+v (request %s, decision %s, expires %s), want Jane's verified approval",
				out, deref(out.ApprovalRequestID), deref(out.PolicyDecisionID), deref(out.ExpiresAt))
		}
	})

	t.Run("deny", func(t *testing.T) {
		run := runExample(t, h, py, "transport", approvals)
		clickWhenPosted(t, h, run, len(h.slack.Messages()), "deny")
		out := finished(t, h, run)
		if out.Result != nil || out.Approved || out.Approver != "jane@company.com" || out.ReasonCode == nil ||
			*out.ReasonCode != "not_terminal_allow" || !strings.Contains(out.Denied, "not_terminal_allow") {
			t.Fatalf("AGT recorded %+v, want Jane's deny resolving the chain to deny", out)
		}
	})

	t.Run("forged", func(t *testing.T) {
		run := runExample(t, h, py, "transport", forgingProxy(t, h))
		clickWhenPosted(t, h, run, len(h.slack.Messages()), "approve")
		out := finished(t, h, run)
		if out.Result != nil || out.Approved || out.Approver != "webhook:rejected" ||
			!strings.Contains(out.Reason, "unverified approver identity: bad signature") ||
			out.ReasonCode == nil || !strings.Contains(*out.ReasonCode, "not permitted for stage 0") {
			t.Fatalf("AGT recorded %+v, want a denial for a bad signature", out)
		}
	})
}

// TestAGTLegacyExample runs the README's legacy wiring: ApprovebotApproval
// as govern's approval_handler. The approvers see the call's context; the
// approval AGT gets is Jane's, verified against the body it sent.
func TestAGTLegacyExample(t *testing.T) {
	t.Parallel()
	py := signingtest.Python(t, "yaml")
	h := newHarness(t, agtConfig)
	h.start()
	approvals := h.url + "/v1/approvals"

	t.Run("approve", func(t *testing.T) {
		run := runExample(t, h, py, "legacy", approvals)
		id := clickWhenPosted(t, h, run, len(h.slack.Messages()), "approve", "ACME-123", "5000")
		out := finished(t, h, run)
		if out.Result == nil || *out.Result != "sent 5000 to ACME-123" || !out.Approved || out.Approver != "jane@company.com" {
			t.Fatalf("AGT recorded %+v, want the tool run on Jane's verified approval of %s", out, id)
		}
		// With AGT present the handler returns AGT's own ApprovalDecision.
		if out.DecisionType != "agt_standin.ApprovalDecision" {
			t.Errorf("decision is a %s, want AGT's ApprovalDecision", out.DecisionType)
		}
	})

	t.Run("deny", func(t *testing.T) {
		run := runExample(t, h, py, "legacy", approvals)
		clickWhenPosted(t, h, run, len(h.slack.Messages()), "deny")
		out := finished(t, h, run)
		if out.Result != nil || out.Approved || out.Approver != "jane@company.com" ||
			!strings.Contains(out.Denied, "Approval rejected by jane@company.com") {
			t.Fatalf("AGT recorded %+v, want Jane's denial", out)
		}
	})

	t.Run("forged", func(t *testing.T) {
		run := runExample(t, h, py, "legacy", forgingProxy(t, h))
		clickWhenPosted(t, h, run, len(h.slack.Messages()), "approve")
		out := finished(t, h, run)
		if out.Result != nil || out.Approved || out.Approver != "webhook:rejected" ||
			!strings.Contains(out.Reason, "unverified approver identity: bad signature") {
			t.Fatalf("AGT recorded %+v, want a denial for a bad signature", out)
		}
	})
}

// The top-level README shows the agent-side examples too; they must be the
// very ones the tests above run from integrations/agt/README.md.
func TestREADMEAgentExamplesAreTheTestedOnes(t *testing.T) {
	t.Parallel()
	read := func(path string) map[string]string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, m := range regexp.MustCompile("(?s)<!-- example: (\\w+) -->\n```\\w+\n(.*?)```").FindAllSubmatch(data, -1) {
			out[string(m[1])] = string(m[2])
		}
		return out
	}
	top, tested := read(filepath.Join("..", "..", "README.md")), read(filepath.Join(signingtest.PackageDir(), "README.md"))
	for _, name := range []string{"policy", "transport", "legacy"} {
		if tested[name] == "" {
			t.Fatalf("integrations/agt/README.md has no %s example", name)
		}
		if top[name] != tested[name] {
			t.Errorf("README.md's %s example differs from the tested one in integrations/agt/README.md", name)
		}
	}
}
