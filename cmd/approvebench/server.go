package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

// The identities the benchmark's config and fake agree on. Tokens are fixed
// strings: the fake and the child only ever talk over loopback.
const (
	callerName    = "bench-agent"
	callerToken   = "bench-agent-token-0123456789abcdef"
	botToken      = "xoxb-bench-token"
	signingSecret = "bench-signing-secret-0123456789ab"
	channel       = "C0BENCH"
	approverID    = "U0BENCH"
	ruleName      = "bench-rule"
	groupName     = "bench-approvers"
)

// configTemplate routes every benchmark request to one Slack channel with one
// approver. channel_interval is 0s: Slack's real pacing (one post a second
// per channel) would otherwise be the only thing measured.
const configTemplate = `
listen: 127.0.0.1:0
store:
  path: {{DIR}}/approvebot.db
callers:
  - name: ` + callerName + `
    token: ` + callerToken + `
    rate: 1000000/s
    burst: 1000000
    max_pending: 1000000
slack:
  bot_token: ` + botToken + `
  signing_secret: ` + signingSecret + `
  api_url: {{SLACK}}
  channel_interval: 0s
signing:
  key_file: {{DIR}}/signing.key
  issuer: approvebench
delivery:
  timeout: 60s
approvers:
  ` + groupName + `:
    slack:
      channels: [` + channel + `]
      users: [` + approverID + `]
routes:
  - match: {rule_name: ` + ruleName + `}
    approvers: [` + groupName + `]
    quorum: any
    timeout: 1h
`

// writeConfig writes approvebot.yaml into dir for a fake at slackURL, with
// extra top-level sections appended.
func writeConfig(dir, slackURL string, extra ...string) (string, error) {
	text := strings.NewReplacer("{{DIR}}", dir, "{{SLACK}}", slackURL).Replace(configTemplate) + strings.Join(extra, "")
	path := filepath.Join(dir, "approvebot.yaml")
	return path, os.WriteFile(path, []byte(text), 0o600)
}

// newFake starts a Slack fake that knows the approver. It takes message
// blocks without checking them against Block Kit's limits: the tests check
// every rendering, and here the checks would run on the cores the server
// is measured on, costing the fake more than the rest of a post.
func newFake() *slackfake.Fake {
	f := slackfake.New(botToken)
	f.SetBlockChecks(false)
	f.AddUser(approverID, "Bench Approver", "approver@bench.example")
	return f
}

// buildBinary builds ./cmd/approvebot of the module this command belongs to.
func buildBinary(ctx context.Context, work string) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" {
		return "", errors.New("not inside the approvebot module: run from the repository, or pass -bin")
	}
	bin := filepath.Join(work, "approvebot")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/approvebot")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/approvebot: %w\n%s", err, out)
	}
	return bin, nil
}

// server is a running approvebot child process and its Slack fake.
type server struct {
	cmd   *exec.Cmd
	url   string
	dir   string
	logs  string
	fake  *slackfake.Fake
	exit  chan error
	ready time.Duration // from exec to the first /readyz 200
	stdin io.Closer     // the floor server's, held open while it runs
}

// startServer runs `approvebot serve` on dir (which may hold a store already)
// and waits until /readyz answers 200. The fake is the caller's, or a new
// one when nil.
func (b *bench) startServer(dir string, fake *slackfake.Fake, extraConfig ...string) (*server, error) {
	if fake == nil {
		fake = newFake()
	}
	return b.startServerWith(dir, fake, func() (string, error) { return writeConfig(dir, fake.URL(), extraConfig...) })
}

// startServerWith is startServer with the configuration file that config
// writes.
func (b *bench) startServerWith(dir string, fake *slackfake.Fake, config func() (string, error)) (*server, error) {
	cfg, err := config()
	if err != nil {
		fake.Close()
		return nil, err
	}
	logPath := filepath.Join(dir, "approvebot.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fake.Close()
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(b.bin, "serve", "--config", cfg)
	// Logs go straight to a file: the kernel copies them, not this process,
	// which shares the machine's cores with the server.
	cmd.Stderr = logFile
	return b.launch(&server{cmd: cmd, dir: dir, logs: logPath, fake: fake})
}

// launch starts s.cmd, a server that prints "approvebot listening on URL"
// first on its stdout, and waits until its /readyz answers 200. It closes
// s.fake when the server cannot be started.
func (b *bench) launch(s *server) (*server, error) {
	cmd, fake, logPath := s.cmd, s.fake, s.logs
	s.exit = make(chan error, 1)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fake.Close()
		return nil, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fake.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, r)
	}()
	go func() { s.exit <- cmd.Wait() }()
	select {
	case line := <-lines:
		u, ok := strings.CutPrefix(strings.TrimSpace(line), "approvebot listening on ")
		if !ok {
			s.kill()
			return nil, fmt.Errorf("approvebot did not start (stdout %q); log:\n%s", line, tail(logPath))
		}
		s.url = u
	case <-time.After(2 * time.Minute):
		s.kill()
		return nil, fmt.Errorf("approvebot did not start within 2 minutes; log:\n%s", tail(logPath))
	}
	for {
		if ok, err := b.ready(s.url); ok {
			break
		} else if time.Since(start) > time.Minute {
			s.kill()
			return nil, fmt.Errorf("approvebot not ready after a minute (%v); log:\n%s", err, tail(logPath))
		}
		select {
		case err := <-s.exit:
			fake.Close()
			return nil, fmt.Errorf("approvebot exited: %v; log:\n%s", err, tail(logPath))
		case <-time.After(time.Millisecond):
		}
	}
	s.ready = time.Since(start)
	return s, nil
}

func (b *bench) ready(url string) (bool, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
	if err != nil {
		return false, err
	}
	resp, err := b.client().Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK, fmt.Errorf("/readyz: %s", resp.Status)
}

// stop asks the server to stop, as a deploy does (SIGTERM), and waits.
// The benchmark's idle connections are closed first: a graceful shutdown
// waits up to 5 s for a connection that never carried a request, and a
// burst of 256 agents leaves some of those behind in the client's pool.
func (b *bench) stop(s *server) error {
	b.client().CloseIdleConnections()
	defer s.fake.Close()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-s.exit:
		s.exit <- err
		if err != nil {
			return fmt.Errorf("approvebot exited with %v; log:\n%s", err, tail(s.logs))
		}
		return nil
	case <-time.After(60 * time.Second):
		s.kill()
		return errors.New("approvebot did not stop within 60 s of SIGTERM")
	}
}

func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	err := <-s.exit
	s.exit <- err
	s.fake.Close()
}

// rss is the child's resident memory in bytes (VmRSS).
func (s *server) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// cpu is the CPU time the child has used so far (user + system), from
// /proc/<pid>/stat.
func (s *server) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields count from its ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// selfCPU is the CPU time this process has used (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// fds counts the child's open file descriptors.
func (s *server) fds() (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid))
	return len(ents), err
}

// metric reads one unlabelled series from the server's /metrics, or -1
// when the server does not export it.
func (b *bench) metric(s *server, name string) float64 {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
	resp, err := b.client().Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return -1
	}
	for _, line := range bytes.Split(body, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte(name+" "))
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(rest)), 64)
		if err == nil {
			return v
		}
	}
	return -1
}

// settle waits until the server owes no chat work (the outbox is empty), so
// one measurement does not pay for the tail of the one before.
func (b *bench) settle(s *server) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		v := b.metric(s, "approvebot_outbox_jobs")
		if v == 0 {
			break
		}
		if v < 0 {
			time.Sleep(500 * time.Millisecond)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
}

// tail is the end of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// newTransport allows as many connections to the server as the benchmark
// holds, and keeps them: a closed connection would leave a TIME_WAIT socket
// and a new handshake for every request.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 1024,
		MaxConnsPerHost:     0,
		// Below half of the server's header_timeout (5 s by default): at
		// server.max_connections the server may close a connection idle
		// that long to make room, and a request sent on one as it is
		// closed fails with EOF (a POST is not retried). Dropping idle
		// connections sooner, as a client of approvebot should, means
		// none is reused once it can be closed.
		IdleConnTimeout:       time.Second,
		ResponseHeaderTimeout: 0, // held requests answer when someone decides
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}
