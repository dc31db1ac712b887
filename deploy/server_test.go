package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

// server is the static binary serving a config, against a fake Slack.
type server struct {
	t     *testing.T
	url   string
	slack *slackfake.Fake
	env   map[string]string
	cmd   *exec.Cmd
	logs  *syncBuffer
	done  chan struct{}
}

// startServer runs `approvebot serve` from the static binary on config,
// whose ${VAR}s env fills (SLACK_API_URL is set to the fake's).
func startServer(t *testing.T, config string, env map[string]string) *server {
	t.Helper()
	// Slack must be the fake: the test talks to nothing off this machine.
	if !strings.Contains(config, "  api_url: ${SLACK_API_URL}\n") || strings.Contains(config, "\nteams:") {
		t.Fatal("a test config must point slack.api_url at ${SLACK_API_URL} and have no teams section")
	}
	bin := staticBinary(t)
	fake := slackfake.New(env["SLACK_BOT_TOKEN"])
	t.Cleanup(fake.Close)
	dir := t.TempDir()
	path := filepath.Join(dir, "approvebot.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "SLACK_API_URL=" + fake.URL()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	s := &server{t: t, slack: fake, env: env, cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := cmd.Wait()
		pw.CloseWithError(fmt.Errorf("approvebot exited: %v", err))
		close(s.done)
	}()
	t.Cleanup(s.stop)
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("approvebot did not start: %v\n%s", err, s.logs)
	}
	go io.Copy(io.Discard, pr)
	s.url = strings.TrimSpace(strings.TrimPrefix(line, "approvebot listening on "))
	return s
}

func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("approvebot did not stop within 60 s of SIGTERM")
	}
}

var client = &http.Client{Timeout: 60 * time.Second}

// call sends a request and returns the status and the body.
func (s *server) call(method, path string, body []byte, header map[string]string) (int, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// legacy submits a legacy approval request and returns its id (answered at
// once with respond-async) or its answer.
func (s *server) legacy(token, rule string, approvers []string, prefer string) (int, map[string]any) {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{
		"type": "approval_request", "rule_name": rule, "policy_name": "p", "agent_id": "agent-1",
		"action": "transfer", "approvers": approvers,
		"requested_at": time.Now().UTC().Format(time.RFC3339),
	})
	code, out := s.call(http.MethodPost, "/v1/approvals", body, map[string]string{"Authorization": "Bearer " + token, "Prefer": prefer})
	var m map[string]any
	_ = json.Unmarshal(out, &m)
	return code, m
}

// final waits for a request's decision.
func (s *server) final(token, id string) map[string]any {
	s.t.Helper()
	for range 4 {
		_, out := s.call(http.MethodGet, "/v1/approvals/"+id+"?wait=30", nil, map[string]string{"Authorization": "Bearer " + token})
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			s.t.Fatalf("GET %s: %s", id, out)
		}
		if m["status"] != "pending" {
			return m
		}
	}
	s.t.Fatalf("%s is still pending after 2 minutes\nlogs:\n%s", id, s.logs)
	return nil
}

// click clicks a button of the message posted for id in channel.
func (s *server) click(user, channel, action, id string) int {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var ts string
	if err := s.slack.WaitFor(ctx, func() bool {
		for _, m := range s.slack.Messages() {
			if m.Channel == channel && bytes.Contains(m.Blocks, []byte(id)) {
				ts = m.TS
				return true
			}
		}
		return false
	}); err != nil {
		s.t.Fatalf("no message for %s in %s: %v\n%s", id, channel, err, s.logs)
	}
	s.waitPosted(id)
	payload := slackfake.BlockActionPayload(slackfake.Click{UserID: user, UserName: strings.ToLower(user), Channel: channel, MessageTS: ts, ActionID: action, Value: id})
	payload["trigger_id"] = s.slack.Trigger(user)
	code := s.interact(payload)
	if code != http.StatusOK || action != slack.DenyActionID {
		return code
	}
	// Deny opens the reason modal; the vote counts when it is submitted.
	views := s.slack.Views()
	for i := len(views) - 1; i >= 0; i-- {
		if v := views[i]; v.CallbackID == slack.ReasonCallbackID && v.User == user {
			return s.interact(slackfake.ViewSubmissionWithInput(v, user, strings.ToLower(user), slack.ReasonBlockID, slack.ReasonInputID, "not today"))
		}
	}
	s.t.Fatalf("Deny opened no reason modal\n%s", s.logs)
	return 0
}

// interact posts a signed interaction payload, as Slack does.
func (s *server) interact(payload any) int {
	s.t.Helper()
	body, header := slackfake.SignInteraction(s.env["SLACK_SIGNING_SECRET"], payload, time.Now())
	req, _ := http.NewRequest(http.MethodPost, s.url+"/slack/interactions", bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitPosted waits until the store has recorded a posted message for the
// request: the fake holds a message a moment before approvebot records it,
// and a click on a message approvebot has not recorded is refused. It asks
// the admin API, with the ADMIN_TOKEN of the server's environment.
func (s *server) waitPosted(id string) {
	s.t.Helper()
	token, ok := s.env["ADMIN_TOKEN"]
	if !ok {
		s.t.Fatal("waitPosted needs admin.token: ${ADMIN_TOKEN} in the config")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, body := s.call(http.MethodGet, "/admin/requests/"+id, nil, map[string]string{"Authorization": "Bearer " + token})
		var story struct {
			Request struct {
				Destinations []struct {
					State string `json:"state"`
				} `json:"destinations"`
			} `json:"request"`
		}
		_ = json.Unmarshal(body, &story)
		for _, d := range story.Request.Destinations {
			if d.State == "posted" {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("request %s: no message recorded as posted: %s", id, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
