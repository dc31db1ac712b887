package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
)

// serveRefused runs `approvebot serve` from bin, which must exit without
// ever listening; it returns what it wrote to stderr.
func (h *harness) serveRefused(bin string) string {
	h.t.Helper()
	cmd := exec.Command(bin, "serve", "--config", h.config)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.dir, "GORACE=exitcode=66"}
	for k, v := range h.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			h.t.Fatalf("approvebot exited 0 on a store it must refuse\nstderr:\n%s", &stderr)
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		h.t.Fatalf("approvebot did not exit on a store it must refuse\nstdout:\n%s\nstderr:\n%s", &stdout, &stderr)
	}
	if strings.Contains(stdout.String(), "listening") {
		h.t.Fatalf("approvebot listened on a store it must refuse:\n%s\nstderr:\n%s", &stdout, &stderr)
	}
	if strings.Contains(stderr.String(), "fatal error") || strings.Contains(stderr.String(), "goroutine ") {
		h.t.Fatalf("approvebot crashed instead of refusing the store:\n%s", &stderr)
	}
	return stderr.String()
}

// TestDamagedStoreRefusedAtStart: a store file that is empty, cut short,
// inconsistent inside, or writable by others is refused at start with an
// error that says which, and the offline `audit verify` says the same
// instead of calling it intact.
func TestDamagedStoreRefusedAtStart(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
		want   string
	}{
		{"empty", func(t *testing.T, path string) { truncate(t, path, 0) }, "the file is empty (0 bytes)"},
		{"half", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			truncate(t, path, fi.Size()/2)
		}, "it was cut short (truncated)"},
		{"garbage pages", func(t *testing.T, path string) {
			// Page 2 onwards: the meta pages still add up, nothing else does.
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			overwrite(t, path, 2*4096, fi.Size()-2*4096)
		}, "not an approvebot store"},
		{"group writable", func(t *testing.T, path string) {
			if err := os.Chmod(path, 0o660); err != nil {
				t.Fatal(err)
			}
		}, "group or others can write it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, baseConfig)
			c := h.spawn(bin)
			for i := range 20 {
				h.pendingID(requestNamed(fmt.Sprintf("transfer %d", i)))
			}
			c.terminate()
			path := filepath.Join(h.dir, "approvebot.db")
			tc.damage(t, path)
			logs := h.serveRefused(bin)
			if !strings.Contains(logs, tc.want) || !strings.Contains(logs, path) {
				t.Fatalf("refusal does not say %q about %s:\n%s", tc.want, path, logs)
			}
			var out, errOut bytes.Buffer
			err := run(t.Context(), bot.SystemClock{}, []string{"audit", "verify", "--config", h.config}, h.getenv, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(out.String(), "intact") {
				t.Fatalf("audit verify on the damaged store: err %v, want it to say %q\nstdout: %s", err, tc.want, &out)
			}
		})
	}
}

// TestStoreDamagedWhileServingFailsClosed damages the file under a running
// approvebot (as a failing disk would): bbolt panics on the next read or
// write. Every agent still gets an HTTP answer that approves nothing, never
// a dropped connection, and the process stops with a non-zero exit and says
// why.
func TestStoreDamagedWhileServingFailsClosed(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	h := newHarness(t, baseConfig)
	c := h.spawn(bin)
	held := h.submit(requestNamed("transfer held"), auth())
	h.waitFor("the held request posted", func() bool { return h.slack.Posts("C0TREASURY") >= 1 })
	h.waitRecordedPosts(2)
	// Nothing left for the outbox: the next read of the file is the
	// agent's.
	eventually(t, "the outbox idle", func() bool {
		r, err := h.tryDo(http.MethodGet, "/metrics", nil, nil)
		return err == nil && strings.Contains(string(r.body), "\napprovebot_outbox_jobs 0\n")
	})

	path := filepath.Join(h.dir, "approvebot.db")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	overwrite(t, path, 2*4096, fi.Size()-2*4096)

	r, err := h.tryDo(http.MethodPost, "/v1/approvals", requestNamed("transfer after the damage"), auth("Prefer", "respond-async"))
	if err != nil {
		t.Fatalf("the agent lost its connection instead of an answer: %v\nlogs:\n%s", err, c.logs)
	}
	if r.status != http.StatusServiceUnavailable || r.answer.Approved {
		t.Fatalf("request after the damage: %d %s, want 503 approving nothing", r.status, r.body)
	}
	a := h.await(held)
	if a.status != http.StatusOK || a.answer.Approved || a.answer.Status != "pending" {
		t.Fatalf("held agent: %d %s, want an answer saying still pending", a.status, a.body)
	}
	select {
	case <-c.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("approvebot kept running on a damaged store\nlogs:\n%s", c.logs)
	}
	if c.err == nil {
		t.Fatalf("approvebot exited 0 after its store failed\nlogs:\n%s", c.logs)
	}
	if !strings.Contains(c.logs.String(), "the store failed") || !strings.Contains(c.logs.String(), "store damaged") {
		t.Fatalf("approvebot did not say why it stopped:\n%s", c.logs)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// overwrite fills n bytes of the file from off with a pattern no bbolt page
// starts with.
func overwrite(t *testing.T, path string, off, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xAA}, int(n)), off); err != nil {
		t.Fatal(err)
	}
}
