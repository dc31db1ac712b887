package bot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/intake/intaketest"
)

// The agent API through the real handler on a loopback server, as agents
// call it: POST /v1/approvals (held, async, Prefer: wait), GET with and
// without ?wait=, DELETE, and the refusals.

// api is the rig's engine behind its HTTP API.
type api struct {
	*rig
	server *Server
	url    string
}

func newAPI(t *testing.T) *api {
	t.Helper()
	rg := newRig(t)
	s, err := NewServer(ServerConfig{Engine: rg.engine, Logger: rg.engine.log})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Drain()
		ts.Close()
		s.Close()
	})
	return &api{rig: rg, server: s, url: ts.URL}
}

// reply is an HTTP answer, its body decoded.
type reply struct {
	status int
	header http.Header
	body   map[string]any
}

func (a *api) do(method, path, token string, body []byte, header ...string) reply {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+path, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out := reply{status: resp.StatusCode, header: resp.Header}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	if len(data) > 0 && json.Unmarshal(data, &out.body) != nil {
		a.t.Fatalf("%s %s: %d, body not JSON: %q", method, path, resp.StatusCode, data)
	}
	return out
}

// legacy is a legacy body for rule, unlike any other of the test's.
func (a *api) legacy(rule string) []byte {
	a.submitted++
	body, _ := intaketest.LegacyBody(intaketest.Legacy{RuleName: rule, Approvers: []string{}, RequestedAt: a.clock.Now(),
		Context: intaketest.Object{{Key: "n", Value: a.submitted}}})
	return body
}

// async submits body for the agent without waiting, and returns the id
// the agent polls.
func (a *api) async(body []byte) string {
	a.t.Helper()
	got := a.do("POST", "/v1/approvals", agentToken, body, "Prefer", "respond-async")
	if got.status != http.StatusAccepted {
		a.t.Fatalf("async submit: %d %v", got.status, got.body)
	}
	return got.body["approval_request_id"].(string)
}

// held submits body for the agent in the background; the reply arrives on
// the channel once the request is answered.
func (a *api) held(token string, body []byte, header ...string) <-chan reply {
	ch := make(chan reply, 1)
	go func() { ch <- a.do("POST", "/v1/approvals", token, body, header...) }()
	return ch
}

// waitHeld waits until n agents are held waiting.
func (a *api) waitHeld(n int) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		a.server.heldMu.Lock()
		have, ch := a.server.held, a.server.heldChanged
		a.server.heldMu.Unlock()
		if have == n {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			a.t.Fatalf("waiting for %d held agents: %d held", n, have)
		}
	}
}

// metric reads one sample of the API's /metrics.
func (a *api) metric(name string) string {
	a.t.Helper()
	resp, err := http.Get(a.url + "/metrics")
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	return ""
}

// await reads a held reply.
func await(t *testing.T, ch <-chan reply) reply {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("no answer")
		return reply{}
	}
}

func TestAPIRefusals(t *testing.T) {
	a := newAPI(t)
	valid := a.legacy("one")
	for _, tt := range []struct {
		name   string
		method string
		path   string
		token  string
		body   []byte
		header []string
		status int
		field  string // the field the error names
		says   string
	}{
		{name: "no token", method: "POST", path: "/v1/approvals", body: valid, status: 401, says: "bearer token"},
		{name: "unknown token", method: "POST", path: "/v1/approvals", token: "not-a-caller-token-0000", body: valid, status: 401},
		{name: "unknown token on GET", method: "GET", path: "/v1/approvals/x", token: "not-a-caller-token-0000", status: 401},
		{name: "unknown token on DELETE", method: "DELETE", path: "/v1/approvals/x", token: "not-a-caller-token-0000", status: 401},
		{name: "not JSON", method: "POST", path: "/v1/approvals", token: agentToken, body: []byte("{"), status: 400},
		{name: "not an approval request", method: "POST", path: "/v1/approvals", token: agentToken, body: []byte(`{"type":"other"}`), status: 400},
		{name: "too large", method: "POST", path: "/v1/approvals", token: agentToken, body: bytes.Repeat([]byte(" "), maxRequestBody+1), status: 413},
		{name: "bad Idempotency-Key", method: "POST", path: "/v1/approvals", token: agentToken, body: valid,
			header: []string{"Idempotency-Key", "has space"}, status: 400, field: "Idempotency-Key"},
		{name: "unknown request", method: "GET", path: "/v1/approvals/ar_nothing", token: agentToken, status: 404, says: "ar_nothing"},
		{name: "cancel an unknown request", method: "DELETE", path: "/v1/approvals/ar_nothing", token: agentToken, status: 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := a.do(tt.method, tt.path, tt.token, tt.body, tt.header...)
			if got.status != tt.status {
				t.Fatalf("status %d (%v), want %d", got.status, got.body, tt.status)
			}
			if got.body["approved"] != false {
				t.Errorf("body %v, want approved false", got.body)
			}
			if tt.field != "" && got.body["field"] != tt.field {
				t.Errorf("field %v, want %s", got.body["field"], tt.field)
			}
			if msg, _ := got.body["error"].(string); !strings.Contains(msg, tt.says) {
				t.Errorf("error %q, want %q in it", msg, tt.says)
			}
			if tt.status == 401 && got.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if n := len(a.slack.callsOf("post")); n != 0 {
		t.Fatalf("%d posts from refused requests", n)
	}
}

// TestAPIRateLimited: a caller over its rate is refused with 429, told
// which limit and when to come back; the request it was allowed stands.
func TestAPIRateLimited(t *testing.T) {
	a := newAPI(t)
	first := a.do("POST", "/v1/approvals", limitedToken, a.legacy("one"), "Prefer", "respond-async")
	if first.status != http.StatusAccepted {
		t.Fatalf("first request: %d %v", first.status, first.body)
	}
	got := a.do("POST", "/v1/approvals", limitedToken, a.legacy("one"), "Prefer", "respond-async")
	if got.status != http.StatusTooManyRequests || got.body["limit"] != LimitRate || got.body["approved"] != false {
		t.Fatalf("second request: %d %v", got.status, got.body)
	}
	if ra := got.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}
	if m := a.metric(`approvebot_limited_requests_total{limit="rate"}`); m != "1" {
		t.Fatalf("limited metric %q, want 1", m)
	}
}

// TestAPIStopIntake: during a shutdown, new requests are refused with 503
// and a Retry-After, and readiness fails.
func TestAPIStopIntake(t *testing.T) {
	a := newAPI(t)
	a.server.StopIntake()
	got := a.do("POST", "/v1/approvals", agentToken, a.legacy("one"))
	if got.status != http.StatusServiceUnavailable || got.header.Get("Retry-After") != "5" {
		t.Fatalf("%d %v Retry-After %q", got.status, got.body, got.header.Get("Retry-After"))
	}
	if r := a.do("GET", "/readyz", "", nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d", r.status)
	}
}

// TestAPIAsyncAndPoll: a request submitted with respond-async is polled to
// its decision; a caller sees only its own requests.
func TestAPIAsyncAndPoll(t *testing.T) {
	a := newAPI(t)
	got := a.do("POST", "/v1/approvals", agentToken, a.legacy("one"), "Prefer", "respond-async")
	if got.status != http.StatusAccepted || got.header.Get("Preference-Applied") != "respond-async" {
		t.Fatalf("%d %v %v", got.status, got.header, got.body)
	}
	id := got.body["approval_request_id"].(string)
	if loc := got.header.Get("Location"); loc != "/v1/approvals/"+id {
		t.Fatalf("Location %q", loc)
	}
	if got.body["status"] != "pending" || got.body["approved"] != false || got.body["approver"] != "system:pending" {
		t.Fatalf("body %v", got.body)
	}
	if poll := a.do("GET", "/v1/approvals/"+id, agentToken, nil); poll.status != 200 || poll.body["status"] != "pending" {
		t.Fatalf("poll: %d %v", poll.status, poll.body)
	}
	if other := a.do("GET", "/v1/approvals/"+id, otherToken, nil); other.status != 404 {
		t.Fatalf("another caller's poll: %d %v", other.status, other.body)
	}
	for _, bad := range []string{"abc", "-1", "1.5"} {
		if r := a.do("GET", "/v1/approvals/"+id+"?wait="+bad, agentToken, nil); r.status != 400 || r.body["field"] != "wait" {
			t.Fatalf("wait=%s: %d %v", bad, r.status, r.body)
		}
	}
	a.waitRecorded(id, 1)
	a.click(id, "C0OPS", "U0ANN", approvebot.Allow)
	poll := a.do("GET", "/v1/approvals/"+id, agentToken, nil)
	if poll.status != 200 || poll.body["status"] != "approved" || poll.body["approved"] != true || poll.body["approver"] != "ann@example.com" {
		t.Fatalf("poll after the click: %d %v", poll.status, poll.body)
	}
	// A wait on a decided request answers at once.
	if r := a.do("GET", "/v1/approvals/"+id+"?wait=abc", agentToken, nil); r.status != 200 || r.body["approved"] != true {
		t.Fatalf("wait on a decided request: %d %v", r.status, r.body)
	}
}

// TestAPISchemaV1: a schema 1.0 request is known by its approval_request_id,
// a retry of it reattaches, and another body under the same id is refused.
func TestAPISchemaV1(t *testing.T) {
	a := newAPI(t)
	o := intaketest.V1{ExpiresAt: a.clock.Now().Add(10 * time.Minute)}
	o.ApprovalRequestID = intaketest.RandomID("ar")
	body, fields := intaketest.V1Body(o)
	id := a.async(body)
	if id != o.ApprovalRequestID {
		t.Fatalf("id %q, want the agent's %q", id, o.ApprovalRequestID)
	}
	if again := a.async(body); again != id {
		t.Fatalf("retry answered for %q", again)
	}
	o.Parameters = intaketest.Object{{Key: "amount", Value: 1}}
	other, _ := intaketest.V1Body(o)
	if r := a.do("POST", "/v1/approvals", agentToken, other, "Prefer", "respond-async"); r.status != http.StatusConflict {
		t.Fatalf("another body under the same id: %d %v", r.status, r.body)
	}
	stored, err := a.engine.Lookup("agent", id)
	if err != nil {
		t.Fatal(err)
	}
	a.waitRecorded(stored.ID, 1)
	a.click(stored.ID, "C0OPS", "U0BEN", approvebot.Deny)
	poll := a.do("GET", "/v1/approvals/"+id, agentToken, nil)
	if poll.body["decision"] != "deny" || poll.body["status"] != "denied" || poll.body["action_digest"] != fields["action_digest"] {
		t.Fatalf("poll: %v", poll.body)
	}
}

// TestAPIIdempotencyKey: a legacy retry with the same key reattaches; a
// different body under the key is refused, naming the header.
func TestAPIIdempotencyKey(t *testing.T) {
	a := newAPI(t)
	body := a.legacy("one")
	first := a.do("POST", "/v1/approvals", agentToken, body, "Prefer", "respond-async", "Idempotency-Key", "k-1")
	again := a.do("POST", "/v1/approvals", agentToken, body, "Prefer", "respond-async", "Idempotency-Key", "k-1")
	if first.status != 202 || again.body["approval_request_id"] != first.body["approval_request_id"] {
		t.Fatalf("retry: %v then %v", first.body, again.body)
	}
	other := a.do("POST", "/v1/approvals", agentToken, a.legacy("one"), "Prefer", "respond-async", "Idempotency-Key", "k-1")
	if other.status != http.StatusConflict || other.body["field"] != "Idempotency-Key" {
		t.Fatalf("another body under the key: %d %v", other.status, other.body)
	}
}

// TestAPIHeld: an agent that asks without respond-async is held until the
// click that decides, counted while it waits.
func TestAPIHeld(t *testing.T) {
	a := newAPI(t)
	ch := a.held(agentToken, a.legacy("one"))
	a.waitHeld(1)
	if m := a.metric("approvebot_held_connections"); m != "1" {
		t.Fatalf("held connections %q, want 1", m)
	}
	post := a.slack.waitCalls(t, "post", 1)[0]
	id := post.Msg.RequestID
	a.waitRecorded(id, 1)
	select {
	case r := <-ch:
		t.Fatalf("answered before the click: %v", r.body)
	default:
	}
	a.click(id, "C0OPS", "U0ANN", approvebot.Allow)
	got := await(t, ch)
	if got.status != 200 || got.body["approved"] != true || got.body["approver"] != "ann@example.com" || got.body["approval_request_id"] != id {
		t.Fatalf("held answer: %d %v", got.status, got.body)
	}
	if got.header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", got.header.Get("Content-Type"))
	}
	a.waitHeld(0)
	if m := a.metric("approvebot_held_connections"); m != "0" {
		t.Fatalf("held connections %q after the answer, want 0", m)
	}
}

// TestAPIHeldUntilDeadline: a held agent nobody answers hears the timeout
// at its deadline, the shorter of the route's and its Prefer: wait.
func TestAPIHeldUntilDeadline(t *testing.T) {
	a := newAPI(t)
	ch := a.held(agentToken, a.legacy("one"), "Prefer", "wait=30")
	a.waitHeld(1)
	a.clock.waitTimers(t, 1) // the deadline
	a.clock.Advance(30 * time.Second)
	got := await(t, ch)
	if got.body["status"] != "timed_out" || got.body["approved"] != false || got.body["reason"] != "timed out after 30 s without a decision" {
		t.Fatalf("answer: %v", got.body)
	}
}

// TestAPIPollWait: GET ?wait= holds the poll until the decision.
func TestAPIPollWait(t *testing.T) {
	a := newAPI(t)
	id := a.async(a.legacy("one"))
	ch := make(chan reply, 1)
	go func() { ch <- a.do("GET", "/v1/approvals/"+id+"?wait=300", agentToken, nil) }()
	a.waitHeld(1)
	a.waitRecorded(id, 1)
	a.click(id, "C0OPS", "U0ANN", approvebot.Deny)
	if got := await(t, ch); got.status != 200 || got.body["status"] != "denied" {
		t.Fatalf("poll: %d %v", got.status, got.body)
	}
	a.waitHeld(0)
}

// TestAPIDrain: at the end of a shutdown's grace, held agents are answered
// with the request as it stands: not approved, still pending.
func TestAPIDrain(t *testing.T) {
	a := newAPI(t)
	held := a.held(agentToken, a.legacy("one"))
	id := a.async(a.legacy("one"))
	poll := make(chan reply, 1)
	go func() { poll <- a.do("GET", "/v1/approvals/"+id+"?wait=300", agentToken, nil) }()
	a.waitHeld(2)
	a.server.Drain()
	for _, got := range []reply{await(t, held), await(t, poll)} {
		if got.status != 200 || got.body["status"] != "pending" || got.body["approved"] != false {
			t.Fatalf("drained answer: %d %v", got.status, got.body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a.server.WaitHeld(ctx)
	if ctx.Err() != nil {
		t.Fatal("agents still held after the drain")
	}
}

// TestAPIAgentHangsUp: an agent that closes its connection while held is
// let go at once; its request stays pending for a retry to reattach to.
func TestAPIAgentHangsUp(t *testing.T) {
	a := newAPI(t)
	body := a.legacy("one")
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", a.url+"/v1/approvals", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+agentToken)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	a.waitHeld(1)
	conn.Close()
	a.waitHeld(0)
	id := a.slack.waitCalls(t, "post", 1)[0].Msg.RequestID
	if r, _ := a.store.Get(id); r.Status != approvebot.StatusPending {
		t.Fatalf("status %s after the hang-up, want pending", r.Status)
	}
	// The retry reattaches and is answered by the click.
	ch := a.held(agentToken, body)
	a.waitHeld(1)
	a.waitRecorded(id, 1)
	a.click(id, "C0OPS", "U0ANN", approvebot.Allow)
	if got := await(t, ch); got.body["approval_request_id"] != id || got.body["approved"] != true {
		t.Fatalf("retry's answer: %v", got.body)
	}
}

// TestAPICancel: DELETE withdraws a pending request and answers its held
// agent; repeated, it answers the same; on a decided request it is a 409;
// another caller cannot withdraw it.
func TestAPICancel(t *testing.T) {
	a := newAPI(t)
	ch := a.held(agentToken, a.legacy("one"))
	a.waitHeld(1)
	id := a.slack.waitCalls(t, "post", 1)[0].Msg.RequestID
	if r := a.do("DELETE", "/v1/approvals/"+id, otherToken, nil); r.status != 404 {
		t.Fatalf("another caller's DELETE: %d %v", r.status, r.body)
	}
	got := a.do("DELETE", "/v1/approvals/"+id, agentToken, nil)
	if got.status != 200 || got.body["status"] != "cancelled" || got.body["approved"] != false {
		t.Fatalf("DELETE: %d %v", got.status, got.body)
	}
	if held := await(t, ch); held.body["status"] != "cancelled" {
		t.Fatalf("held agent told %v", held.body)
	}
	if again := a.do("DELETE", "/v1/approvals/"+id, agentToken, nil); again.status != 200 || again.body["status"] != "cancelled" {
		t.Fatalf("second DELETE: %d %v", again.status, again.body)
	}

	decided := a.async(a.legacy("one"))
	a.waitRecorded(decided, 1)
	a.click(decided, "C0OPS", "U0ANN", approvebot.Allow)
	if r := a.do("DELETE", "/v1/approvals/"+decided, agentToken, nil); r.status != http.StatusConflict || r.body["status"] != "approved" {
		t.Fatalf("DELETE after the decision: %d %v", r.status, r.body)
	}
}

// TestAPIFinalAtOnce: a request final on arrival (no route) is answered at
// once, held or not, with its denial and no poll address.
func TestAPIFinalAtOnce(t *testing.T) {
	a := newAPI(t)
	for _, prefer := range []string{"", "respond-async"} {
		got := a.do("POST", "/v1/approvals", agentToken, a.legacy("nobody"), "Prefer", prefer)
		if got.status != 200 || got.body["status"] != "no_route" || got.body["approved"] != false || got.header.Get("Location") != "" {
			t.Fatalf("Prefer %q: %d %v Location %q", prefer, got.status, got.body, got.header.Get("Location"))
		}
	}
	a.waitHeld(0)
}
