package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

// hostileServer bounds connections tightly, so a test can fill them.
const hostileServer = `server:
  max_connections: 8
  max_held: 32
  header_timeout: 1s
  max_header_bytes: 8KiB
  callback_read_timeout: 1s
  callback_memory: 1MiB
`

// dialRaw opens a TCP connection to the harness's server.
func (h *harness) dialRaw() net.Conn {
	h.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer waits until the server has closed c: a read returns an
// error (end of stream, or a reset) after whatever answer it sent.
func closedByServer(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	got, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server kept a hostile connection open for a minute (read %q)", got)
	}
	return string(got)
}

// TestHostileConnectionsLeaveRoomForAgents: connections that never finish
// their headers, oversized headers, callback bodies that trickle in or
// pile up, all unauthenticated, are cut off by the server, and agents and
// clicks keep being served while they are open, even with every open
// connection slot taken by them and more agents held than slots.
func TestHostileConnectionsLeaveRoomForAgents(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig+hostileServer)
	h.start()

	// Oversized headers are refused before anything else is read.
	big := h.dialRaw()
	fmt.Fprintf(big, "POST /slack/interactions HTTP/1.1\r\nHost: x\r\nX-Filler: %s\r\n\r\n", strings.Repeat("a", 64<<10))
	if got := closedByServer(t, big); !strings.HasPrefix(got, "HTTP/1.1 431") {
		t.Fatalf("64 KiB of headers: got %q, want 431", firstLine(got))
	}

	// More held agents than there are open slots: held agents count apart.
	var held []<-chan response
	for i := range 12 {
		held = append(held, h.submit(requestNamed(fmt.Sprintf("transfer held-%d", i)), auth()))
	}
	h.waitFor("12 held requests posted", func() bool { return h.slack.Posts("C0TREASURY") >= 12 })

	// Every open slot taken by connections that never finish their headers.
	var loris []net.Conn
	for range 8 {
		c := h.dialRaw()
		fmt.Fprint(c, "POST /slack/interactions HTTP/1.1\r\nHost: x\r\n")
		loris = append(loris, c)
	}
	// A callback whose body trickles in, and two whose bodies together
	// exceed server.callback_memory.
	slow := h.dialRaw()
	fmt.Fprintf(slow, "POST /slack/interactions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", 960<<10, strings.Repeat("a", 1024))
	var heavy []net.Conn
	for range 2 {
		c := h.dialRaw()
		fmt.Fprintf(c, "POST /slack/interactions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 1000<<10)
		go c.Write([]byte(strings.Repeat("b", 600<<10)))
		heavy = append(heavy, c)
	}

	// Agents and clicks are served all the same.
	id := h.pendingID(requestNamed("transfer while under attack"))
	msgs := h.waitMessages(id, 2)
	var ts string
	for _, m := range msgs {
		if m.Channel == "C0TREASURY" {
			ts = m.TS
		}
	}
	if r := h.click("U0JANE", "C0TREASURY", ts, "approve", id); r.status != http.StatusOK {
		t.Fatalf("click under attack: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodGet, "/v1/approvals/"+id+"?wait=60", nil, auth()); r.status != http.StatusOK || !r.answer.Approved {
		t.Fatalf("decision under attack: %d %s", r.status, r.body)
	}

	// And every hostile connection has been closed by the server.
	for _, c := range loris {
		closedByServer(t, c)
	}
	closedByServer(t, slow)
	for _, c := range heavy {
		closedByServer(t, c)
	}
	// Which limit cut each one off depends on which came first here (the
	// connection cap or the callback limits); TestCallbackLimits checks
	// each callback limit on its own.

	// The held agents are still held, and are answered when decided.
	for i, ch := range held {
		select {
		case r := <-ch:
			t.Fatalf("held agent %d answered before any decision: %d %s", i, r.status, r.body)
		default:
		}
	}
	for _, m := range h.slack.Messages() {
		if m.Channel != "C0TREASURY" || m.TS == ts {
			continue
		}
		if rid := requestIDPattern.FindString(string(m.Blocks)); rid != "" {
			h.click("U0JANE", "C0TREASURY", m.TS, "deny", rid)
		}
	}
	for i, ch := range held {
		if r := h.await(ch); r.status != http.StatusOK || r.answer.Status != "denied" {
			t.Fatalf("held agent %d: %d %s", i, r.status, r.body)
		}
	}
}

// TestAbandonedHeldAgentsReleaseDescriptors: 200 agents that send a request
// and hang up without waiting for the answer give their descriptors back
// at once, not when their requests end; each request stays pending, and a
// retry reattaches to it and gets its decision.
func TestAbandonedHeldAgentsReleaseDescriptors(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	h := newHarness(t, baseConfig)
	c := h.spawn(bin)
	fds := func() int {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	heldGauge := func() int {
		r, err := h.tryDo(http.MethodGet, "/metrics", nil, nil)
		if err != nil {
			return -1
		}
		for _, line := range strings.Split(string(r.body), "\n") {
			if v, ok := strings.CutPrefix(line, "approvebot_held_connections "); ok {
				n, _ := strconv.ParseFloat(v, 64)
				return int(n)
			}
		}
		return -1
	}
	// One request end to end first, so the baseline holds the connections
	// to Slack that any request opens.
	warm := h.pendingID(requestNamed("transfer warm-up"))
	h.waitMessages(warm, 2)
	client.CloseIdleConnections()
	before := fds()

	const n = 200
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = requestNamed(fmt.Sprintf("transfer abandoned-%03d", i))
	}
	body := func(i int) []byte { return bodies[i] }
	var conns []net.Conn
	for i := range n {
		conn := h.dialRaw()
		b := body(i)
		fmt.Fprintf(conn, "POST /v1/approvals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nIdempotency-Key: abandoned-%03d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			callerToken, i, len(b), b)
		conns = append(conns, conn)
	}
	eventually(t, "200 agents held", func() bool { return heldGauge() == n })
	h.waitRecordedPosts(2*n + 2) // every post made: Slack's connections are open
	held := fds()
	if held < before+n {
		t.Fatalf("%d descriptors with %d agents held, %d before: the test does not see them", held, n, before)
	}
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Go(func() { conn.Close() })
	}
	wg.Wait()
	eventually(t, "the abandoned agents released", func() bool { return heldGauge() == 0 })
	client.CloseIdleConnections()
	eventually(t, "their descriptors closed", func() bool { return fds() <= held-n })

	// The request is still pending; a retry reattaches and gets the decision.
	retry := h.submit(body(7), auth("Idempotency-Key", "abandoned-007"))
	eventually(t, "the retry held", func() bool { return heldGauge() == 1 })
	var target string
	for _, m := range h.slack.Messages() {
		if m.Channel == "C0TREASURY" && strings.Contains(string(m.Blocks)+m.Text, "abandoned-007") {
			target = m.TS
		}
	}
	if target == "" {
		t.Fatal("no message for the abandoned request")
	}
	id := ""
	for _, m := range h.slack.Messages() {
		if m.TS == target {
			id = requestIDPattern.FindString(string(m.Blocks))
		}
	}
	h.click("U0JANE", "C0TREASURY", target, "approve", id)
	if r := h.await(retry); r.status != http.StatusOK || !r.answer.Approved || r.answer.ApprovalRequestID != id {
		t.Fatalf("retry of an abandoned request: %d %s", r.status, r.body)
	}
	c.terminate()
}

// TestReadyzSaysOnlyReadyOrNot: /readyz tells anyone only whether
// approvebot is ready; why not goes to the log and the admin API; and
// probes do not reach the platform.
func TestReadyzSaysOnlyReadyOrNot(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	eventually(t, "ready", func() bool {
		r, err := h.tryDo(http.MethodGet, "/readyz", nil, nil)
		return err == nil && r.status == http.StatusOK
	})
	calls := h.slack.CallCount("auth.test")
	for range 50 {
		if r := h.do(http.MethodGet, "/readyz", nil, nil); r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"status":"ready"}` {
			t.Fatalf("readyz: %d %s", r.status, r.body)
		}
	}
	if got := h.slack.CallCount("auth.test"); got != calls {
		t.Fatalf("50 probes made %d calls to Slack", got-calls)
	}
	admin := map[string]string{"Authorization": "Bearer " + adminToken}
	if r := h.do(http.MethodGet, "/admin/ready", nil, admin); r.status != http.StatusOK || !strings.Contains(string(r.body), `"ready":true`) {
		t.Fatalf("admin ready: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodGet, "/admin/ready", nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("admin ready without the token: %d", r.status)
	}

	// Not ready, and the details stay private.
	h.stop()
	h2 := newHarness(t, baseConfig)
	h2.slack.FailFor("auth.test", time.Hour, slackfake.Status(http.StatusInternalServerError))
	h2.start()
	eventually(t, "the log to say why", func() bool { return strings.Contains(h2.logs.String(), `"msg":"not ready"`) })
	r := h2.do(http.MethodGet, "/readyz", nil, nil)
	if r.status != http.StatusServiceUnavailable || strings.TrimSpace(string(r.body)) != `{"status":"not ready"}` {
		t.Fatalf("readyz with Slack failing: %d %s", r.status, r.body)
	}
	if r := h2.do(http.MethodGet, "/admin/ready", nil, admin); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "slack not reachable") {
		t.Fatalf("admin ready with Slack failing: %d %s", r.status, r.body)
	}
}

// The platforms are checked again every 30 s, whatever the probes: a
// platform that comes back makes approvebot ready at the next check, not
// before, and a probe never calls it.
func TestReadinessRecheckedOnItsInterval(t *testing.T) {
	h := newHarness(t, baseConfig)
	h.clock = bot.NewManualClock(time.Now())
	h.slack.FailFor("auth.test", time.Hour, slackfake.Status(http.StatusInternalServerError))
	h.start()
	eventually(t, "the log to say why", func() bool { return strings.Contains(h.logs.String(), `"msg":"not ready"`) })
	h.slack.Heal("auth.test")
	calls := h.slack.CallCount("auth.test")
	h.clock.Advance(readinessInterval - time.Second)
	for range 5 {
		if r := h.do(http.MethodGet, "/readyz", nil, nil); r.status != http.StatusServiceUnavailable {
			t.Fatalf("readyz before the next check: %d %s", r.status, r.body)
		}
	}
	if got := h.slack.CallCount("auth.test"); got != calls {
		t.Fatalf("%d calls to auth.test before the next check", got-calls)
	}
	h.clock.Advance(time.Second)
	eventually(t, "ready at the next check", func() bool { return h.do(http.MethodGet, "/readyz", nil, nil).status == http.StatusOK })
	if got := h.slack.CallCount("auth.test"); got != calls+1 {
		t.Fatalf("%d calls to auth.test at the next check, want 1", got-calls)
	}
}

func firstLine(s string) string {
	line, _, _ := bufio.NewReader(strings.NewReader(s)).ReadLine()
	return string(line)
}

// TestAbandonedHeldAgentsOverTLS: under TLS too, agents that hang up give
// their held slot and their socket back at once, and held agents leave the
// open connections' count.
func TestAbandonedHeldAgentsOverTLS(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	certFile, keyFile := filepath.Join(h.dir, "tls.crt"), filepath.Join(h.dir, "tls.key")
	writeCert(t, certFile, keyFile, 1)
	h.rewriteConfig("listen: 127.0.0.1:0", "listen: 127.0.0.1:0\ntls:\n  cert_file: "+certFile+"\n  key_file: "+keyFile)
	h.start()
	gauge := func(name string) int {
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get(h.url + "/metrics")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				n, _ := strconv.ParseFloat(v, 64)
				return int(n)
			}
		}
		return -1
	}
	const n = 20
	var conns []*tls.Conn
	for i := range n {
		c, err := tls.Dial("tcp", strings.TrimPrefix(h.url, "https://"), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		b := requestNamed(fmt.Sprintf("transfer tls-%d", i))
		fmt.Fprintf(c, "POST /v1/approvals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", callerToken, len(b), b)
		conns = append(conns, c)
	}
	eventually(t, "20 agents held in held slots", func() bool {
		return gauge("approvebot_held_connections") == n && gauge("approvebot_held_slots") == n
	})
	for _, c := range conns {
		c.Close()
	}
	eventually(t, "the held slots released", func() bool {
		return gauge("approvebot_held_connections") == 0 && gauge("approvebot_held_slots") == 0
	})
}

// TestCallbackLimits: with the connection slots free, a callback body that
// trickles in is cut off at server.callback_read_timeout, and two bodies
// that together exceed server.callback_memory do not both get it: one is
// cut off (the one arriving longest) or refused; each is logged once.
func TestCallbackLimits(t *testing.T) {
	t.Parallel()
	t.Run("read timeout", func(t *testing.T) {
		h := newHarness(t, baseConfig+strings.Replace(hostileServer, "max_connections: 8", "max_connections: 64", 1))
		h.start()
		slow := h.dialRaw()
		fmt.Fprintf(slow, "POST /slack/interactions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", 960<<10, strings.Repeat("a", 1024))
		closedByServer(t, slow)
		// The line is written once the handler has returned, just after
		// the connection is cut.
		eventually(t, "the timeout logged", func() bool {
			return strings.Count(h.logs.String(), "did not arrive within server.callback_read_timeout") == 1
		})
	})
	t.Run("memory", func(t *testing.T) {
		// A read timeout long enough that only the memory limit can act.
		cfg := strings.Replace(hostileServer, "max_connections: 8", "max_connections: 64", 1)
		cfg = strings.Replace(cfg, "callback_read_timeout: 1s", "callback_read_timeout: 1m", 1)
		h := newHarness(t, baseConfig+cfg)
		h.start()
		for i := range 2 {
			c := h.dialRaw() // closed when the test ends
			fmt.Fprintf(c, "POST /slack/interactions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 1000<<10)
			go c.Write([]byte(strings.Repeat(string(rune('b'+i)), 600<<10)))
		}
		eventually(t, "the memory limit logged", func() bool {
			logs := h.logs.String()
			return strings.Count(logs, "when server.callback_memory ran short")+strings.Count(logs, "bodies being read fill server.callback_memory") == 1
		})
		if m := string(h.do(http.MethodGet, "/metrics", nil, nil).body); !strings.Contains(m, `reason="slack_callback_memory_`) {
			t.Errorf("the memory refusal was not counted by reason")
		}
	})
}
