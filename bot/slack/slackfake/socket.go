package slackfake

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Socket Mode, as Slack speaks it: apps.connections.open (with the
// app-level token) hands out a single-use websocket URL; the server says
// hello, sends envelopes ({"envelope_id", "type", "payload",
// "accepts_response_payload", "retry_attempt", "retry_reason"}), pings, and
// expects each envelope acknowledged ({"envelope_id"}). An envelope that is
// not acknowledged is sent again on the next connection, with retry_attempt
// counting up, as Slack does. disconnect frames (reason refresh_requested,
// warning) ask the client to reconnect.

// socketPing is how often the fake pings each connection. slack-go's client
// reconnects when Slack has not pinged it for 30 s.
const socketPing = time.Second

type envelope struct {
	ID       string
	Type     string
	Payload  json.RawMessage
	Attempts int // deliveries so far
	Acked    int // acknowledgements received
	// AckPayload is the payload of the last acknowledgement that carried
	// one (a view_submission answer).
	AckPayload json.RawMessage
}

type socketConn struct {
	id   int
	ws   *websocket.Conn
	mu   sync.Mutex // serialises writes
	done chan struct{}
}

func (c *socketConn) write(v any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteJSON(v)
}

type socketMode struct {
	appToken  string
	tickets   map[string]bool // single-use connection tickets
	conns     map[int]*socketConn
	opened    int
	envelopes []*envelope // every envelope sent, in order
	// ignoreAcks drops acknowledgements as a broken network would;
	// onAck is called with each one as it arrives, before it is counted.
	ignoreAcks bool
	onAck      func(envelopeID string)
	byID       map[string]*envelope
}

// EnableSocketMode makes the fake accept apps.connections.open with
// appToken (xapp-...) and serve Socket Mode connections.
func (f *Fake) EnableSocketMode(appToken string) {
	f.mu.Lock()
	f.socket = &socketMode{appToken: appToken, tickets: map[string]bool{}, conns: map[int]*socketConn{}, byID: map[string]*envelope{}}
	f.mu.Unlock()
}

// openConnection answers apps.connections.open. Unlike other methods it
// takes the app-level token, in the Authorization header only.
func (f *Fake) openConnection(w http.ResponseWriter, r *http.Request) {
	call := Call{Method: "apps.connections.open", Status: http.StatusOK}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	sm := f.socket
	f.counts[call.Method]++
	failure := f.takeFailureLocked(call.Method, "")
	f.mu.Unlock()
	if failure != nil {
		call.Status, call.Error = failure.apply(f, w, r)
		f.record(call)
		return
	}
	switch {
	case sm == nil:
		call.Error = "not_allowed_token_type"
	case token == "":
		call.Error = "not_authed"
	case token != sm.appToken:
		call.Error = "invalid_auth"
	}
	if call.Error != "" {
		f.finish(w, call, nil)
		return
	}
	f.mu.Lock()
	f.seq++
	ticket := fmt.Sprintf("t%d", f.seq)
	sm.tickets[ticket] = true
	f.mu.Unlock()
	url := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/link/?ticket=" + ticket
	f.finish(w, call, map[string]any{"url": url})
}

// upgrader accepts the Origin Slack's SDKs send (https://api.slack.com);
// gorilla's default would refuse it as cross-origin.
var upgrader = websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096,
	CheckOrigin: func(r *http.Request) bool {
		o := r.Header.Get("Origin")
		return o == "" || o == "https://api.slack.com"
	}}

// serveSocket is the websocket end of a connection ticket.
func (f *Fake) serveSocket(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	f.mu.Lock()
	sm := f.socket
	valid := sm != nil && sm.tickets[ticket]
	if valid {
		delete(sm.tickets, ticket)
	}
	f.mu.Unlock()
	if !valid {
		http.Error(w, "invalid or used ticket", http.StatusUnauthorized)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	f.mu.Lock()
	sm.opened++
	c := &socketConn{id: sm.opened, ws: ws, done: make(chan struct{})}
	sm.conns[c.id] = c
	var owed []*envelope
	for _, e := range sm.envelopes {
		if e.Acked == 0 {
			owed = append(owed, e)
		}
	}
	f.notifyLocked()
	f.mu.Unlock()

	_ = c.write(map[string]any{"type": "hello", "num_connections": len(sm.conns),
		"connection_info": map[string]any{"app_id": "A0FAKEAPP"},
		"debug_info":      map[string]any{"host": "fake", "approximate_connection_time": 3600}})
	for _, e := range owed {
		f.deliver(c, e)
	}
	go f.pingLoop(c)
	f.readAcks(c)
}

func (f *Fake) pingLoop(c *socketConn) {
	t := time.NewTicker(socketPing)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-f.done:
			return
		case <-t.C:
			c.mu.Lock()
			err := c.ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(5*time.Second))
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// readAcks reads the client's frames until the connection ends, and records
// every acknowledgement.
func (f *Fake) readAcks(c *socketConn) {
	defer func() {
		close(c.done)
		c.ws.Close()
		f.mu.Lock()
		delete(f.socket.conns, c.id)
		f.notifyLocked()
		f.mu.Unlock()
	}()
	for {
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if err := c.ws.ReadJSON(&ack); err != nil {
			return
		}
		f.mu.Lock()
		ignore, onAck := f.socket.ignoreAcks, f.socket.onAck
		f.mu.Unlock()
		if ignore {
			continue // as if lost on the way
		}
		if onAck != nil {
			onAck(ack.EnvelopeID)
		}
		f.mu.Lock()
		if e, ok := f.socket.byID[ack.EnvelopeID]; ok {
			e.Acked++
			if len(ack.Payload) > 0 && string(ack.Payload) != "null" {
				e.AckPayload = ack.Payload
			}
		}
		f.notifyLocked()
		f.mu.Unlock()
	}
}

func (f *Fake) deliver(c *socketConn, e *envelope) {
	f.mu.Lock()
	attempt := e.Attempts
	e.Attempts++
	f.mu.Unlock()
	frame := map[string]any{"envelope_id": e.ID, "type": e.Type, "payload": e.Payload,
		"accepts_response_payload": e.Type == "interactive", "retry_attempt": attempt}
	if attempt > 0 {
		frame["retry_reason"] = "timeout"
	}
	_ = c.write(frame)
}

// SendInteractive sends an interaction payload (what an HTTP interaction
// carries in its payload field) as an "interactive" envelope on one open
// connection, or keeps it for the next one. It returns the envelope id.
func (f *Fake) SendInteractive(payload any) string { return f.sendEnvelope("interactive", payload) }

// SendEvent sends an Events API event_callback (AppHomeOpened's, say) as an
// "events_api" envelope, as Slack does in Socket Mode. It returns the
// envelope id.
func (f *Fake) SendEvent(callback any) string { return f.sendEnvelope("events_api", callback) }

func (f *Fake) sendEnvelope(typ string, payload any) string {
	raw, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	sm := f.socket
	f.seq++
	e := &envelope{ID: fmt.Sprintf("env-%d", f.seq), Type: typ, Payload: raw}
	sm.envelopes = append(sm.envelopes, e)
	sm.byID[e.ID] = e
	var to *socketConn
	for _, id := range slices.Sorted(maps.Keys(sm.conns)) {
		to = sm.conns[id] // the newest: Slack spreads envelopes over connections
	}
	f.mu.Unlock()
	if to != nil {
		f.deliver(to, e)
	}
	return e.ID
}

// IgnoreAcks makes the fake drop (true) or count (false) the
// acknowledgements it receives: envelopes whose acknowledgement was dropped
// are sent again on the next connection, as Slack does.
func (f *Fake) IgnoreAcks(ignore bool) {
	f.mu.Lock()
	f.socket.ignoreAcks = ignore
	f.mu.Unlock()
}

// OnAck calls fn with each acknowledgement's envelope id as it arrives,
// before it is counted, so a test can look at what had happened by then.
func (f *Fake) OnAck(fn func(envelopeID string)) {
	f.mu.Lock()
	f.socket.onAck = fn
	f.mu.Unlock()
}

// Resend sends envelope id again on the newest open connection, as Slack
// does when an acknowledgement came late.
func (f *Fake) Resend(id string) {
	f.mu.Lock()
	e := f.socket.byID[id]
	var to *socketConn
	for _, cid := range slices.Sorted(maps.Keys(f.socket.conns)) {
		to = f.socket.conns[cid]
	}
	f.mu.Unlock()
	if e != nil && to != nil {
		f.deliver(to, e)
	}
}

// Envelope reports how often envelope id was delivered and acknowledged.
func (f *Fake) Envelope(id string) (deliveries, acks int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.socket.byID[id]; ok {
		return e.Attempts, e.Acked
	}
	return 0, 0
}

// AckPayload returns the payload the last acknowledgement of envelope id
// carried, or nil.
func (f *Fake) AckPayload(id string) json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.socket.byID[id]; ok {
		return slices.Clone(e.AckPayload)
	}
	return nil
}

// SocketConnections reports how many Socket Mode connections were opened in
// all and how many are open now.
func (f *Fake) SocketConnections() (opened, open int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.socket == nil {
		return 0, 0
	}
	return f.socket.opened, len(f.socket.conns)
}

// DisconnectSocket sends a disconnect frame with reason (refresh_requested,
// warning, link_disabled) on every open connection. The client is expected
// to open a new connection; the old one is closed once it has.
func (f *Fake) DisconnectSocket(reason string) {
	for _, c := range f.openConns() {
		_ = c.write(map[string]any{"type": "disconnect", "reason": reason,
			"debug_info": map[string]any{"host": "fake"}})
	}
}

// DropSocket cuts every open connection without a close frame, as a network
// failure does. Envelopes not yet acknowledged are sent again on the next
// connection.
func (f *Fake) DropSocket() {
	for _, c := range f.openConns() {
		_ = c.ws.NetConn().Close()
	}
}

func (f *Fake) openConns() []*socketConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.socket == nil {
		return nil
	}
	var out []*socketConn
	for _, id := range slices.Sorted(maps.Keys(f.socket.conns)) {
		out = append(out, f.socket.conns[id])
	}
	return out
}
