package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	goslack "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/approvebot/approvebot/bot"
)

// Socket Mode: Slack sends interactions over a websocket approvebot opens,
// so approvebot needs no public address. Each envelope is acknowledged as
// an HTTP interaction would be answered: once its vote is committed (or
// after ackWait), never before. An envelope that is not acknowledged (the
// click could not be taken, the socket dropped first) is sent again by
// Slack; envelopes already taken are recognised by their id and only
// acknowledged again, so a redelivered click is never counted twice (the
// engine would refuse a second vote anyway; this spares the clicker a
// second reply).

// envelopeMemory is how long an envelope id is remembered. Slack retries an
// unacknowledged envelope for a few minutes at most.
const envelopeMemory = 15 * time.Minute

// maxAcksInFlight bounds the acknowledgements waiting for their vote to
// commit; beyond it an envelope is left unacknowledged for Slack to resend.
const maxAcksInFlight = 1024

// socketConfig is what Socket Mode needs besides the Web API client.
type socketConfig struct {
	appToken, botToken, apiURL string
	hc                         *http.Client
}

// socketState is what RunSocketMode shares with Check and its ack workers.
type socketState struct {
	connected atomic.Bool
	fatal     atomic.Pointer[error]
	inflight  chan struct{}

	mu   sync.Mutex
	seen map[string]*envelopeResult // by envelope id
	ids  []seenID                   // seen's keys, oldest first, for forgetting
}

type seenID struct {
	id string
	at time.Time
}

type envelopeResult struct {
	done   chan struct{}
	status int // the status accept returned, once done is closed
	answer any // the acknowledgement's payload, or nil
	at     time.Time
}

// SocketMode reports whether the adapter receives clicks over Socket Mode.
func (s *Slack) SocketMode() bool { return s.socket.appToken != "" }

// SocketReady reports an error unless the Socket Mode connection is up (it
// said hello and has not dropped since). It makes no network call, so
// /readyz may ask on every probe.
func (s *Slack) SocketReady() error {
	if !s.SocketMode() {
		return nil
	}
	st := s.socketState()
	if e := st.fatal.Load(); e != nil {
		return fmt.Errorf("slack socket mode stopped: %w", *e)
	}
	if !st.connected.Load() {
		return errors.New("slack socket mode: not connected")
	}
	return nil
}

func (s *Slack) socketState() *socketState {
	s.socketOnce.Do(func() {
		s.sock = &socketState{inflight: make(chan struct{}, maxAcksInFlight), seen: map[string]*envelopeResult{}}
	})
	return s.sock
}

// fatalSocketErrors are answers of apps.connections.open that no retry can
// fix. slack-go's client gives up on some of them by itself and retries the
// others forever; either way the operator must act, so approvebot stops.
var fatalSocketErrors = map[string]bool{
	"invalid_auth": true, "not_authed": true, "account_inactive": true, "token_revoked": true,
	"missing_scope": true, "not_allowed_token_type": true, "invalid_token": true,
}

// RunSocketMode receives interactions over Socket Mode until ctx ends (then
// it returns nil) or Slack refuses the app-level token (then it returns why:
// clicks cannot arrive, and the service must not pretend otherwise). slack-go
// reconnects with backoff after a dropped socket and on Slack's disconnect
// frames; every envelope is handled by d as an HTTP interaction would be.
func (s *Slack) RunSocketMode(ctx context.Context, d bot.Decider) error {
	if !s.SocketMode() {
		return errors.New("slack: socket mode needs an app-level token (slack.app_token)")
	}
	st := s.socketState()
	s.useHome(d)
	api := goslack.New(s.socket.botToken,
		goslack.OptionAPIURL(s.socket.apiURL),
		goslack.OptionHTTPClient(s.socket.hc),
		goslack.OptionAppLevelToken(s.socket.appToken))
	client := socketmode.New(api)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- client.RunContext(runCtx) }()
	fail := func(err error) error {
		st.connected.Store(false)
		st.fatal.Store(&err)
		s.log.ErrorContext(ctx, "slack socket mode stopped: Slack refused the app-level token; check slack.app_token (xapp-..., scope connections:write) and that Socket Mode is on in the app's settings", "err", err)
		return fmt.Errorf("slack socket mode: %w", err)
	}
	for {
		select {
		case err := <-errc:
			st.connected.Store(false)
			if ctx.Err() != nil {
				return nil
			}
			return fail(err)
		case evt := <-client.Events:
			if err := s.socketEvent(runCtx, client, d, evt); err != nil {
				cancel()
				<-errc
				return fail(err)
			}
		}
	}
}

// socketEvent handles one event of the client's stream. It never blocks
// for long: the stream also carries the client's pings.
func (s *Slack) socketEvent(ctx context.Context, client *socketmode.Client, d bot.Decider, evt socketmode.Event) error {
	st := s.socketState()
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		s.log.DebugContext(ctx, "slack socket mode connecting")
	case socketmode.EventTypeConnected:
		s.log.InfoContext(ctx, "slack socket mode connected")
	case socketmode.EventTypeHello:
		st.connected.Store(true)
	case socketmode.EventTypeConnectionError:
		st.connected.Store(false)
		var err error = errors.New("connection error")
		if ce, ok := evt.Data.(*goslack.ConnectionErrorEvent); ok && ce.ErrorObj != nil {
			err = ce.ErrorObj
		}
		if fatalSocketErrors[err.Error()] {
			return err
		}
		s.log.WarnContext(ctx, "slack socket mode connection failed; retrying with backoff", "err", err)
	case socketmode.EventTypeInvalidAuth:
		return errors.New("invalid_auth")
	case socketmode.EventTypeDisconnect:
		st.connected.Store(false)
		reason := ""
		if evt.Request != nil {
			reason = evt.Request.Reason
		}
		s.log.InfoContext(ctx, "slack socket mode: Slack asked to reconnect", "reason", reason)
	case socketmode.EventTypeInteractive:
		if evt.Request == nil {
			return nil
		}
		req := *evt.Request
		select {
		case st.inflight <- struct{}{}:
		default:
			// Left unacknowledged: Slack sends it again.
			s.log.ErrorContext(ctx, "slack socket mode: too many clicks in flight; leaving one for Slack to resend", "envelope_id", req.EnvelopeID)
			return nil
		}
		go func() {
			defer func() { <-st.inflight }()
			s.acceptEnvelope(ctx, client, d, req)
		}()
	case socketmode.EventTypeEventsAPI:
		// Acknowledged at once; an opened Home tab is published after.
		if evt.Request != nil {
			_ = client.AckCtx(ctx, evt.Request.EnvelopeID, nil)
			ev, err := parseEvent(evt.Request.Payload)
			if err != nil {
				s.log.WarnContext(ctx, "slack socket mode event refused: malformed", "envelope_id", evt.Request.EnvelopeID, "err", err)
				return nil
			}
			s.onEvent(ctx, ev)
		}
	case socketmode.EventTypeSlashCommand:
		// Not used; acknowledged so that Slack does not resend them.
		if evt.Request != nil {
			_ = client.AckCtx(ctx, evt.Request.EnvelopeID, nil)
		}
	}
	return nil
}

// acceptEnvelope hands an interactive envelope to the click workers and
// acknowledges it once its vote is committed, unless it could not be taken.
// A redelivered envelope waits for the first delivery's outcome instead of
// being handled again.
func (s *Slack) acceptEnvelope(ctx context.Context, client *socketmode.Client, d bot.Decider, req socketmode.Request) {
	res, first := s.socketState().remember(req.EnvelopeID, s.clock.Now())
	if first {
		res.status, res.answer = s.accept(ctx, d, req.Payload, func(detail string) {
			s.log.WarnContext(ctx, "slack socket mode interaction refused: malformed", "envelope_id", req.EnvelopeID, "err", detail)
		})
		if res.status == http.StatusServiceUnavailable {
			s.socketState().forget(req.EnvelopeID)
		}
		close(res.done)
	} else {
		select {
		case <-res.done:
		case <-ctx.Done():
			return
		}
	}
	if res.status == http.StatusServiceUnavailable {
		return // Slack resends it, and the clicker sees the click is slow
	}
	if err := client.AckCtx(ctx, req.EnvelopeID, res.answer); err != nil {
		s.log.WarnContext(ctx, "slack socket mode: acknowledgement not sent; Slack will resend the click", "envelope_id", req.EnvelopeID, "err", err)
	}
}

// remember returns the result slot for envelope id, delivered at now, and
// whether this is its first delivery.
func (st *socketState) remember(id string, now time.Time) (*envelopeResult, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for len(st.ids) > 0 && now.Sub(st.ids[0].at) > envelopeMemory {
		// Only the entry this id was remembered with: one forgotten (its
		// click could not be taken) and remembered again is younger.
		if r, ok := st.seen[st.ids[0].id]; ok && r.at.Equal(st.ids[0].at) {
			delete(st.seen, st.ids[0].id)
		}
		st.ids = st.ids[1:]
	}
	if r, ok := st.seen[id]; ok {
		return r, false
	}
	r := &envelopeResult{done: make(chan struct{}), at: now}
	st.seen[id] = r
	st.ids = append(st.ids, seenID{id: id, at: now})
	return r, true
}

func (st *socketState) forget(id string) {
	st.mu.Lock()
	delete(st.seen, id)
	st.mu.Unlock()
}
