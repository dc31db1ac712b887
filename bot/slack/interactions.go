package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	goslack "github.com/slack-go/slack"
)

// InteractionsPath is where Slack's interactivity Request URL must point.
const InteractionsPath = "/slack/interactions"

// Assurance names how a Slack clicker was authenticated: Slack signed the
// request that carried the click with our app's signing secret.
const Assurance = "slack_signed_interaction"

const (
	maxInteractionBody = 1 << 20
	// ackWait is how long a click's acknowledgement waits for its decision,
	// leaving a second of Slack's three for the network.
	ackWait      = 2 * time.Second
	clickTimeout = 30 * time.Second
	maxRequestID = 2000 // a button value's limit
)

// click is a verified button press, in our terms.
type click struct {
	RequestID string
	Decision  string // approvebot.Allow or approvebot.Deny
	Channel   string
	MessageTS string
	TeamID    string
	UserID    string
	UserName  string
}

// errNotOurs marks a well-formed interaction that is not a review click
// (another type, another block or action): acknowledged and dropped.
var errNotOurs = errors.New("not an approvebot review click")

// Handler serves POST /slack/interactions: it verifies Slack's signature,
// acknowledges at once, and hands the click to d in the background (Slack
// wants an answer within 3 s; deciding may take longer).
func (s *Slack) Handler(d bot.Decider) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+InteractionsPath, func(w http.ResponseWriter, r *http.Request) {
		s.serveInteraction(w, r, d)
	})
	return mux
}

func (s *Slack) serveInteraction(w http.ResponseWriter, r *http.Request, d bot.Decider) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInteractionBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	// Nothing in the body is looked at before the signature holds.
	if err := s.verify(r.Header, body); err != nil {
		s.log.WarnContext(r.Context(), "slack interaction refused: bad signature", "remote", r.RemoteAddr, "err", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	payload, err := formPayload(body)
	if err != nil {
		s.log.WarnContext(r.Context(), "slack interaction refused: malformed", "err", err)
		http.Error(w, "malformed interaction payload", http.StatusBadRequest)
		return
	}
	w.WriteHeader(s.accept(r.Context(), d, payload))
}

// accept hands a verified interaction payload (the JSON an HTTP interaction
// carries in its payload field, or a Socket Mode envelope's payload) to the
// click workers, and returns the status its acknowledgement should carry:
// 200 once the vote is committed (or after ackWait), 200 at once for an
// interaction that is not ours, 400 for a malformed one, and 503 when the
// click could not be taken, so that Slack shows the clicker an error.
//
// Slack wants its acknowledgement within 3 s. Waiting up to ackWait for the
// vote to be committed before answering means that, in all but slow cases,
// a click Slack shows as accepted is already durable: a crash right after
// the acknowledgement cannot lose it. A slower decision still goes on after
// the acknowledgement, as Slack requires.
func (s *Slack) accept(ctx context.Context, d bot.Decider, payload []byte) int {
	c, err := parsePayload(payload)
	switch {
	case errors.Is(err, errNotOurs):
		return http.StatusOK
	case err != nil:
		s.log.WarnContext(ctx, "slack interaction refused: malformed", "err", err)
		return http.StatusBadRequest
	}
	committed := make(chan struct{})
	if !s.pool.submit(func(ctx context.Context) { s.decide(ctx, d, c, committed) }) {
		s.log.ErrorContext(ctx, "slack click dropped: worker queue full or shutting down",
			"request_id", c.RequestID, "user", c.UserID)
		return http.StatusServiceUnavailable
	}
	wait := time.NewTimer(ackWait)
	defer wait.Stop()
	select {
	case <-committed:
	case <-wait.C:
		s.log.WarnContext(ctx, "slack click acknowledged before it was decided", "request_id", c.RequestID, "user", c.UserID)
	case <-ctx.Done():
	}
	return http.StatusOK
}

func (s *Slack) verify(h http.Header, body []byte) error {
	secret := *s.secret.Load()
	if secret == "" {
		// Socket Mode without a signing secret: nothing that comes over
		// HTTP can be trusted.
		return errors.New("no signing secret configured (Socket Mode): interactions over HTTP are refused")
	}
	v, err := goslack.NewSecretsVerifier(h, secret)
	if err != nil {
		return err
	}
	if _, err := v.Write(body); err != nil {
		return err
	}
	return v.Ensure()
}

// decide hands one click to the engine and tells the clicker what came of it.
func (s *Slack) decide(ctx context.Context, d bot.Decider, c click, committed chan<- struct{}) {
	b := approvebot.Ballot{
		Platform: Platform,
		Ref:      approvebot.MessageRef{Channel: c.Channel, ID: c.MessageTS},
		Approver: approvebot.Approver{
			Platform: Platform, Workspace: c.TeamID, UserID: c.UserID, Name: c.UserName,
		},
		Decision:  c.Decision,
		Assurance: Assurance,
		At:        time.Now().UTC(),
	}
	res := d.Click(ctx, b, c.RequestID)
	close(committed)
	s.log.InfoContext(ctx, "slack click", "request_id", c.RequestID, "user", c.UserID, "channel", c.Channel,
		"decision", c.Decision, "counted", res.Counted, "decided", res.Decided)
	if res.Message == "" {
		return
	}
	if _, err := s.api.PostEphemeralContext(ctx, c.Channel, c.UserID,
		goslack.MsgOptionText(escapeFit(res.Message, 3000), false)); err != nil {
		s.log.WarnContext(ctx, "slack ephemeral reply failed", "request_id", c.RequestID, "user", c.UserID,
			"channel", c.Channel, "reason", deliveryError(err).Reason)
	}
}

// formPayload takes the payload field out of a verified, form-encoded
// interactivity body.
func formPayload(body []byte) ([]byte, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("body is not form-encoded: %w", err)
	}
	payload := form.Get("payload")
	if payload == "" {
		return nil, errors.New("payload field is missing")
	}
	return []byte(payload), nil
}

// parseInteraction reads a verified, form-encoded interactivity body.
func parseInteraction(body []byte) (click, error) {
	payload, err := formPayload(body)
	if err != nil {
		return click{}, err
	}
	return parsePayload(payload)
}

// parsePayload reads a verified interaction payload. It returns errNotOurs
// for interactions that are not review clicks, and an error naming the bad
// part for malformed ones.
func parsePayload(payload []byte) (click, error) {
	var ic goslack.InteractionCallback
	if err := json.Unmarshal(payload, &ic); err != nil {
		return click{}, fmt.Errorf("payload is not an interaction: %w", err)
	}
	if ic.Type != goslack.InteractionTypeBlockActions {
		return click{}, errNotOurs
	}
	if ic.Container.Type != "" && ic.Container.Type != "message" || ic.Container.IsEphemeral {
		return click{}, errNotOurs
	}
	// Actions without a block_id decode as attachment actions, leaving
	// BlockActions empty: range, never index.
	var act *goslack.BlockAction
	for _, a := range ic.ActionCallback.BlockActions {
		if a == nil || a.BlockID != ReviewBlockID || a.Type != "" && a.Type != "button" {
			continue
		}
		if a.ActionID == ApproveActionID || a.ActionID == DenyActionID {
			act = a
			break
		}
	}
	if act == nil || act.Value == "" || len(act.Value) > maxRequestID {
		return click{}, errNotOurs
	}
	c := click{
		RequestID: act.Value,
		Decision:  approvebot.Allow,
		Channel:   first(ic.Container.ChannelID, ic.Channel.ID),
		MessageTS: first(ic.Container.MessageTs, ic.Message.Timestamp),
		TeamID:    first(ic.Team.ID, ic.User.TeamID),
		UserID:    ic.User.ID,
		UserName:  first(ic.User.Name, ic.User.Profile.DisplayName),
	}
	if act.ActionID == DenyActionID {
		c.Decision = approvebot.Deny
	}
	switch {
	case c.UserID == "":
		return click{}, errors.New("payload: user.id is missing")
	case c.TeamID == "":
		return click{}, errors.New("payload: team.id and user.team_id are missing")
	case c.Channel == "":
		return click{}, errors.New("payload: container.channel_id and channel.id are missing")
	case c.MessageTS == "":
		return click{}, errors.New("payload: container.message_ts and message.ts are missing")
	}
	return c, nil
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// clickPool runs acknowledged clicks on a fixed set of workers, so a burst
// of clicks cannot start unbounded goroutines.
type clickPool struct {
	queue chan func(context.Context)
	wg    sync.WaitGroup

	mu     sync.RWMutex
	closed bool

	log    *slog.Logger
	base   context.Context // ends when a shutdown gives up waiting
	cancel context.CancelFunc
}

func (p *clickPool) init(workers, queue int, log *slog.Logger) {
	p.log = log
	p.queue = make(chan func(context.Context), queue)
	p.base, p.cancel = context.WithCancel(context.Background())
	for range workers {
		p.wg.Go(p.run)
	}
}

// submit queues job; false when the queue is full or the pool is closed.
func (p *clickPool) submit(job func(context.Context)) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	select {
	case p.queue <- job:
		return true
	default:
		return false
	}
}

func (p *clickPool) run() {
	for job := range p.queue {
		p.do(job)
	}
}

func (p *clickPool) do(job func(context.Context)) {
	// Each click gets its own deadline, detached from the HTTP request that
	// has long been answered.
	ctx, cancel := context.WithTimeout(p.base, clickTimeout)
	defer cancel()
	defer func() {
		// A panicking decider must not take a worker with it.
		if v := recover(); v != nil {
			p.log.ErrorContext(ctx, "slack click handling panicked", "panic", fmt.Sprint(v))
		}
	}()
	job(ctx)
}

// shutdown stops taking clicks and waits for queued ones. If ctx ends first,
// running clicks are cancelled and shutdown returns ctx's error.
func (p *clickPool) shutdown(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.queue)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		p.cancel()
		return nil
	case <-ctx.Done():
		p.cancel()
		<-done
		return ctx.Err()
	}
}

// Shutdown stops accepting clicks (new ones get 503) and waits for those
// already acknowledged to be decided. When ctx ends first, the clicks still
// running are cancelled, which the engine treats as refused.
func (s *Slack) Shutdown(ctx context.Context) error { return s.pool.shutdown(ctx) }

// Close is Shutdown without a deadline; each click is bounded by its own
// 30 s timeout.
func (s *Slack) Close() { _ = s.pool.shutdown(context.Background()) }
