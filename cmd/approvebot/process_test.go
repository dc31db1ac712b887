package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
	"github.com/approvebot/approvebot/store"
)

// Helpers for the tests that run the real binary as a child process (to
// kill it with SIGKILL, or stop it with SIGTERM) and for the fault and load
// tests that need calls which may fail without failing the test.

// buildBinary builds approvebot with the go that runs the tests, with the
// race detector when the tests have it, so the child is checked too. The
// tests share one build: they only run it, and each build costs seconds of
// linking under -race. TestMain removes it.
func buildBinary(t *testing.T) string {
	t.Helper()
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "approvebot-test-")
		if err != nil {
			shared.err = err
			return
		}
		shared.dir = dir
		bin := filepath.Join(dir, "approvebot")
		args := []string{"build", "-o", bin}
		if raceBuild {
			args = append(args, "-race")
		}
		// The toolchain that built this test, whatever go is on PATH.
		//lint:ignore SA1019 runtime.GOROOT is deprecated for binaries copied elsewhere; a test binary runs where it was built.
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		if out, err := exec.Command(goTool, append(args, ".")...).CombinedOutput(); err != nil {
			shared.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		shared.bin = bin
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.bin
}

// shared is the one build of approvebot the child-process tests run.
var shared struct {
	once     sync.Once
	dir, bin string
	err      error
}

// TestMain removes the shared build once every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// child is approvebot running as a separate process.
type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan struct{}
	err    error
}

// spawn starts `approvebot serve` from bin on the harness's config and
// environment, waits for it to listen and points the harness at it.
func (h *harness) spawn(bin string) *child {
	h.t.Helper()
	cmd := exec.Command(bin, "serve", "--config", h.config)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.dir, "GORACE=exitcode=66"}
	for k, v := range h.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	c := &child{t: h.t, cmd: cmd, logs: &syncBuffer{}, exited: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, c.logs
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("start approvebot: %v", err)
	}
	go func() {
		c.err = cmd.Wait()
		pw.CloseWithError(fmt.Errorf("approvebot exited: %v", c.err))
		close(c.exited)
	}()
	h.t.Cleanup(c.kill)
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(pr)
		line, _ := br.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, br)
	}()
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "approvebot listening on ")
		if !ok {
			c.kill()
			h.t.Fatalf("approvebot did not start: %q\nlogs:\n%s", line, c.logs)
		}
		h.url, h.logs = addr, c.logs
	case <-time.After(60 * time.Second):
		c.kill()
		h.t.Fatalf("approvebot did not start within 60 s\nlogs:\n%s", c.logs)
	}
	return c
}

// kill ends the process as SIGKILL does: no shutdown code runs.
func (c *child) kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
	c.checkRaces()
}

// terminate sends SIGTERM and waits for a clean exit.
func (c *child) terminate() {
	c.t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(60 * time.Second):
		c.kill()
		c.t.Fatalf("approvebot did not stop within 60 s of SIGTERM\nlogs:\n%s", c.logs)
	}
	if c.err != nil {
		c.t.Errorf("approvebot exited with %v after SIGTERM\nlogs:\n%s", c.err, c.logs)
	}
	c.checkRaces()
}

func (c *child) checkRaces() {
	if strings.Contains(c.logs.String(), "DATA RACE") {
		c.t.Errorf("the race detector fired in approvebot:\n%s", c.logs)
	}
}

// eventually polls cond until it holds, for conditions the fake's change
// notifications do not cover.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: still not the case after 60 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitRecordedPosts waits until the audit log records n posted messages in
// all: one export per poll, where waitPosted reads each request's story
// (which scans the whole log) once per request.
func (h *harness) waitRecordedPosts(n int) {
	h.t.Helper()
	eventually(h.t, fmt.Sprintf("%d posted messages recorded", n), func() bool {
		r, err := h.tryDo(http.MethodGet, "/admin/audit", nil, map[string]string{"Authorization": "Bearer " + adminToken})
		if err != nil || r.status != http.StatusOK {
			return false
		}
		return bytes.Count(r.body, []byte(`"type":"message_posted"`)) >= n
	})
}

// tryDo is harness.do for calls that may fail (the server is being killed,
// or is meant to refuse): it returns the error instead of failing the test.
func (h *harness) tryDo(method, path string, body []byte, header map[string]string) (response, error) {
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	out := response{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &out.answer)
	return out, nil
}

// tryClick sends a signed click and returns the HTTP status Slack would see.
func (h *harness) tryClick(user, channel, ts, action, requestID string) (int, error) {
	payload := slackfake.BlockActionPayload(slackfake.Click{
		UserID: user, UserName: strings.ToLower(user), Channel: channel, MessageTS: ts,
		ActionID: action, Value: requestID,
	})
	r, err := h.slackClick(user, payload, signingSecret, h.now())
	return r.status, err
}

// requestNamed builds a legacy request whose action names it, so its
// messages and stored record can be told apart from the others'.
func requestNamed(action string) []byte {
	b, _ := json.Marshal(map[string]any{
		"type":         "approval_request",
		"rule_name":    "approve-large-transfer",
		"policy_name":  "financial-approvals",
		"agent_id":     "payments-agent",
		"action":       action,
		"approvers":    []string{},
		"requested_at": time.Now().UTC().Format("2006-01-02T15:04:05.000000") + "+00:00",
	})
	return b
}

// requestIDPattern finds a request id in a message, with or without buttons.
var requestIDPattern = regexp.MustCompile(`ar_[0-9a-f]{32}`)

// requestOf reads a request as the admin API shows it.
func (h *harness) requestOf(id string) *approvebot.Request {
	h.t.Helper()
	r := h.do(http.MethodGet, "/admin/requests/"+id, nil, map[string]string{"Authorization": "Bearer " + adminToken})
	var s struct {
		Request *approvebot.Request `json:"request"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &s) != nil || s.Request == nil {
		h.t.Fatalf("request %s: %d %s", id, r.status, r.body)
	}
	return s.Request
}

// openStopped opens the store of a stopped approvebot for reading.
func (h *harness) openStopped() *store.Bolt {
	h.t.Helper()
	st, err := store.Open(filepath.Join(h.dir, "approvebot.db"), store.Options{ReadOnly: true})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { st.Close() })
	return st
}

// addUsers adds n Slack users named prefix0000... and returns their ids.
func (h *harness) addUsers(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%04d", prefix, i)
		h.slack.AddUser(ids[i], "User "+ids[i], strings.ToLower(ids[i])+"@company.com")
	}
	return ids
}

// The binary sets the collector's target (gcPercent) unless the environment
// names one, which it keeps; the Go runtime's own metric says which ran.
func TestCollectorTarget(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	for _, tt := range []struct {
		gogc string // "" leaves GOGC unset
		want string
	}{{"", "go_gc_gogc_percent 200\n"}, {"100", "go_gc_gogc_percent 100\n"}} {
		h := newHarness(t, baseConfig)
		if tt.gogc != "" {
			h.env["GOGC"] = tt.gogc
		}
		c := h.spawn(bin)
		if m := h.do(http.MethodGet, "/metrics", nil, nil); !strings.Contains(string(m.body), tt.want) {
			t.Errorf("GOGC=%q: /metrics lacks %q", tt.gogc, strings.TrimSpace(tt.want))
		}
		c.terminate()
	}
}
