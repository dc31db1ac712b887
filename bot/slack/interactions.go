package slack

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/jsonhttp"
	"github.com/approvebot/approvebot/policy"
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
	// fullViewWait bounds opening or paging the full view, which happens
	// before the click is acknowledged.
	fullViewWait = 2500 * time.Millisecond
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
	// FullView: the click is the full view's Approve (a view_submission
	// whose signed metadata says every page was shown).
	FullView bool
	// Reason is what the approver typed in the reason modal; Confirmed
	// says the approval went through a second step (the confirm dialog,
	// the comment modal or the full view).
	Reason    string
	Confirmed bool
	// Home: the click came from the App Home tab, which showed the request
	// at HomeStage, and all its bound facts unless Partial.
	Home      bool
	HomeStage int
	Partial   bool
}

// Kinds of interaction approvebot answers.
const (
	kindVote         = iota // Approve or Deny on a message, or Approve in the full view
	kindViewAll             // open the full view
	kindNextPage            // page the full view
	kindReasonOpen          // Deny (or Approve with a comment): open the reason modal
	kindReasonSubmit        // the reason modal's submit: the vote
)

// interaction is a verified, parsed interactivity payload.
type interaction struct {
	kind      int
	click     click
	triggerID string
	viewID    string
	viewHash  string
	metadata  string // kindNextPage and full-view submissions: the view's private_metadata as received
	rule      string // kindReasonOpen: approvebot.ReasonRequired or ReasonOptional
	reason    string // kindReasonSubmit: the text typed, as received
}

// errNotOurs marks a well-formed interaction that is not a review click
// (another type, another block or action): acknowledged and dropped.
var errNotOurs = errors.New("not an approvebot review click")

// Handler serves POST /slack/interactions: it verifies Slack's signature,
// acknowledges at once, and hands the click to d in the background (Slack
// wants an answer within 3 s; deciding may take longer).
func (s *Slack) Handler(d bot.Decider) http.Handler {
	s.useHome(d)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+InteractionsPath, func(w http.ResponseWriter, r *http.Request) {
		s.serveInteraction(w, r, d)
	})
	mux.HandleFunc("POST "+EventsPath, s.serveEvent)
	return mux
}

// readVerified reads a request Slack signed (an interaction or an event),
// at most maxInteractionBody bytes, and checks the signature before anything
// in it is looked at. When it returns false the refusal has been answered.
func (s *Slack) readVerified(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInteractionBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			bot.NoteRefusal(w, "too_large", "body over the limit")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return nil, false
		}
		bot.NoteRefusal(w, "unreadable", err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return nil, false
	}
	if err := s.verify(r.Header, body); err != nil {
		bot.NoteRefusal(w, "bad_signature", err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return nil, false
	}
	return body, true
}

func (s *Slack) serveInteraction(w http.ResponseWriter, r *http.Request, d bot.Decider) {
	body, ok := s.readVerified(w, r)
	if !ok {
		return
	}
	payload, err := formPayload(body)
	if err != nil {
		bot.NoteRefusal(w, "malformed", err.Error())
		http.Error(w, "malformed interaction payload", http.StatusBadRequest)
		return
	}
	status, answer := s.accept(r.Context(), d, payload, func(detail string) { bot.NoteRefusal(w, "malformed", detail) })
	if answer != nil {
		jsonhttp.Write(w, status, answer)
		return
	}
	w.WriteHeader(status)
}

// accept hands a verified interaction payload (the JSON an HTTP interaction
// carries in its payload field, or a Socket Mode envelope's payload) to the
// click workers, and returns the status its acknowledgement should carry,
// and, for a full-view submission that is refused, the answer that replaces
// the modal: 200 once the vote is committed (or after ackWait), 200 at once
// for an interaction that is not ours, 400 for a malformed one, and 503
// when the click could not be taken, so that Slack shows the clicker an
// error. View all and Next page are served before the acknowledgement:
// views.open needs the click's trigger_id within 3 s of the click.
//
// Slack wants its acknowledgement within 3 s. Waiting up to ackWait for the
// vote to be committed before answering means that, in all but slow cases,
// a click Slack shows as accepted is already durable: a crash right after
// the acknowledgement cannot lose it. A slower decision still goes on after
// the acknowledgement, as Slack requires.
//
// malformed is told why a payload is refused as malformed, to log it once.
func (s *Slack) accept(ctx context.Context, d bot.Decider, payload []byte, malformed func(detail string)) (int, any) {
	in, err := parsePayload(payload)
	switch {
	case errors.Is(err, errNotOurs):
		return http.StatusOK, nil
	case err != nil:
		malformed(err.Error())
		return http.StatusBadRequest, nil
	}
	switch in.kind {
	case kindViewAll, kindNextPage:
		vctx, cancel := context.WithTimeout(ctx, fullViewWait)
		s.serveFullView(vctx, d, in)
		cancel()
		return http.StatusOK, nil
	case kindReasonOpen:
		vctx, cancel := context.WithTimeout(ctx, fullViewWait)
		s.openReason(vctx, in)
		cancel()
		return http.StatusOK, nil
	case kindReasonSubmit:
		m, err := s.openMeta(in.metadata)
		switch {
		case err != nil || m.Decision == "":
			s.log.WarnContext(ctx, "slack reason submission refused: metadata", "user", in.click.UserID, "err", err)
			return http.StatusOK, viewRefusal("This form could not be verified. Close it and press the button on the message again.")
		case m.User != in.click.UserID:
			s.log.WarnContext(ctx, "slack reason submission refused: another user's form", "user", in.click.UserID, "opened_by", m.User)
			return http.StatusOK, viewRefusal("This form was opened by someone else.")
		}
		if msg := reasonProblem(in.reason, m.Rule, m.Decision); msg != "" {
			// Nothing is counted; the modal stays open and says why.
			return http.StatusOK, goslack.NewErrorsViewSubmissionResponse(map[string]string{ReasonBlockID: msg})
		}
		in.click.RequestID, in.click.Channel, in.click.MessageTS = m.Request, m.Channel, m.TS
		in.click.Decision, in.click.Reason = m.Decision, in.reason
		in.click.Confirmed = m.Decision == approvebot.Allow // the modal's Approve is the second step
	}
	if in.kind == kindVote && in.metadata != "" {
		// A full-view submission: its metadata must be ours, for this
		// clicker, from the last page.
		m, err := s.openMeta(in.metadata)
		switch {
		case err != nil:
			s.log.WarnContext(ctx, "slack full view submission refused: metadata", "user", in.click.UserID, "err", err)
			return http.StatusOK, viewRefusal("The approval view could not be verified. Close it and press View all again.")
		case m.User != in.click.UserID:
			s.log.WarnContext(ctx, "slack full view submission refused: another user's view", "user", in.click.UserID, "opened_by", m.User)
			return http.StatusOK, viewRefusal("This view was opened by someone else.")
		case m.Decision != "":
			return http.StatusOK, viewRefusal("The approval view could not be verified. Close it and press View all again.")
		case m.Page+1 != m.Pages:
			return http.StatusOK, viewRefusal("Approve is on the last page: page through every value first.")
		}
		// Paging through every value to the modal's Approve is a second
		// step of its own: it confirms the approval.
		in.click.RequestID, in.click.Channel, in.click.MessageTS, in.click.FullView = m.Request, m.Channel, m.TS, true
		in.click.Confirmed = true
	}
	c := in.click
	ctx = bot.WithRequestID(ctx, c.RequestID)
	committed := make(chan struct{})
	if !s.pool.submit(func(ctx context.Context) { s.decide(ctx, d, c, committed) }) {
		s.log.ErrorContext(ctx, "slack click dropped: worker queue full or shutting down", "user", c.UserID)
		return http.StatusServiceUnavailable, nil
	}
	// Slack gives up on an unacknowledged request after three seconds of
	// its own, real time: this wait is on the wall clock.
	wait := time.NewTimer(ackWait)
	defer wait.Stop()
	select {
	case <-committed:
	case <-wait.C:
		s.log.WarnContext(ctx, "slack click acknowledged before it was decided", "user", c.UserID)
	case <-ctx.Done():
	}
	return http.StatusOK, nil
}

// maxSignatureAge is how far from now a signed request's timestamp may be,
// as Slack advises, so a captured request cannot be replayed later.
const maxSignatureAge = 5 * time.Minute

// verify checks Slack's v0 signature, an HMAC-SHA256 of "v0:" + timestamp
// + ":" + body with the signing secret, and that the timestamp is within
// maxSignatureAge of the adapter's clock.
func (s *Slack) verify(h http.Header, body []byte) error {
	secret := *s.secret.Load()
	if secret == "" {
		// Socket Mode without a signing secret: nothing that comes over
		// HTTP can be trusted.
		return errors.New("no signing secret configured (Socket Mode): interactions over HTTP are refused")
	}
	ts, sig := h.Get("X-Slack-Request-Timestamp"), h.Get("X-Slack-Signature")
	if ts == "" || sig == "" {
		return errors.New("X-Slack-Signature or X-Slack-Request-Timestamp missing")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("X-Slack-Request-Timestamp is not a Unix time")
	}
	if age := s.clock.Now().Sub(time.Unix(sec, 0)).Abs(); age > maxSignatureAge {
		return fmt.Errorf("X-Slack-Request-Timestamp is %s from now, more than %s", age.Round(time.Second), maxSignatureAge)
	}
	hexSig, ok := strings.CutPrefix(sig, "v0=")
	want, err := hex.DecodeString(hexSig)
	if !ok || err != nil || len(want) != sha256.Size {
		return errors.New("X-Slack-Signature is not v0= and a hex SHA-256")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), want) {
		return errors.New("X-Slack-Signature does not match the body")
	}
	return nil
}

// decide hands one click to the engine and tells the clicker what came of it.
func (s *Slack) decide(ctx context.Context, d bot.Decider, c click, committed chan<- struct{}) {
	ctx = bot.WithRequestID(ctx, c.RequestID) // a worker's context knows no request
	b := approvebot.Ballot{
		Platform: Name,
		Ref:      approvebot.MessageRef{Channel: c.Channel, ID: c.MessageTS},
		Approver: approvebot.Approver{
			Platform: Name, Workspace: c.TeamID, UserID: c.UserID, Name: c.UserName,
		},
		Decision:  c.Decision,
		Assurance: Assurance,
		FullView:  c.FullView,
		Reason:    c.Reason,
		Confirmed: c.Confirmed,
	}
	if c.Home {
		b.Home, b.HomeStage, b.Ref = true, c.HomeStage, approvebot.MessageRef{Channel: "home", Partial: c.Partial}
	}
	res := d.Click(ctx, b, c.RequestID)
	close(committed)
	s.log.InfoContext(ctx, "slack click", "user", c.UserID, "channel", c.Channel, "home", c.Home,
		"decision", c.Decision, "counted", res.Counted, "decided", res.Decided)
	if c.Home {
		// No channel to answer in: the clicker's Home tab says what came of it.
		notice := res.Message
		if notice == "" && res.Counted {
			notice = "Your decision was recorded."
		}
		s.homeViewer(c.TeamID, c.UserID, notice)
		s.publishHome(ctx, c.TeamID, c.UserID)
		return
	}
	if res.Message == "" {
		return
	}
	if _, err := s.api().PostEphemeralContext(ctx, c.Channel, c.UserID,
		goslack.MsgOptionText(escapeFit(res.Message, 3000), false), goslack.MsgOptionDisableMarkdown()); err != nil {
		s.log.WarnContext(ctx, "slack ephemeral reply failed", "user", c.UserID,
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
func parseInteraction(body []byte) (interaction, error) {
	payload, err := formPayload(body)
	if err != nil {
		return interaction{}, err
	}
	return parsePayload(payload)
}

// parsePayload reads a verified interaction payload. It returns errNotOurs
// for interactions that are not approvebot's, and an error naming the bad
// part for malformed ones. Request ids are opaque (1 to
// approvebot.MaxIDLength characters); only their length is checked here, the
// engine looks them up.
func parsePayload(payload []byte) (interaction, error) {
	var ic goslack.InteractionCallback
	if err := json.Unmarshal(payload, &ic); err != nil {
		return interaction{}, fmt.Errorf("payload is not an interaction: %w", err)
	}
	in := interaction{triggerID: ic.TriggerID, viewID: ic.View.ID, viewHash: ic.View.Hash}
	c := &in.click
	c.TeamID = first(ic.Team.ID, ic.User.TeamID)
	c.UserID = ic.User.ID
	c.UserName = first(ic.User.Name, ic.User.Profile.DisplayName)
	who := func() error {
		switch {
		case c.UserID == "":
			return errors.New("payload: user.id is missing")
		case c.TeamID == "":
			return errors.New("payload: team.id and user.team_id are missing")
		}
		return nil
	}

	switch ic.Type {
	case goslack.InteractionTypeViewSubmission:
		if ic.View.CallbackID == ReasonCallbackID {
			if ic.View.PrivateMetadata == "" {
				return interaction{}, errors.New("payload: view.private_metadata is missing")
			}
			in.kind, in.metadata = kindReasonSubmit, ic.View.PrivateMetadata
			if ic.View.State != nil {
				in.reason = ic.View.State.Values[ReasonBlockID][ReasonInputID].Value
			}
			return in, who()
		}
		if ic.View.CallbackID != FullViewCallbackID {
			return interaction{}, errNotOurs
		}
		if ic.View.PrivateMetadata == "" {
			return interaction{}, errors.New("payload: view.private_metadata is missing")
		}
		in.kind, in.metadata, c.Decision = kindVote, ic.View.PrivateMetadata, approvebot.Allow
		return in, who()
	case goslack.InteractionTypeBlockActions:
	default:
		return interaction{}, errNotOurs
	}
	if ic.Container.IsEphemeral {
		return interaction{}, errNotOurs
	}
	// Actions without a block_id decode as attachment actions, leaving
	// BlockActions empty: range, never index.
	var act *goslack.BlockAction
	for _, a := range ic.ActionCallback.BlockActions {
		if a == nil || a.Type != "" && a.Type != "button" {
			continue
		}
		switch {
		case ic.Container.Type == "view" && a.BlockID == PagesBlockID && a.ActionID == NextPageActionID,
			ic.Container.Type != "view" && a.BlockID == ReviewBlockID &&
				reviewAction(a.ActionID):
			act = a
		}
		if act != nil {
			break
		}
	}
	if act == nil && ic.Container.Type == "view" && ic.View.Type == goslack.VTHomeTab && ic.View.CallbackID == HomeCallbackID {
		for _, a := range ic.ActionCallback.BlockActions {
			if a != nil && (a.Type == "" || a.Type == "button") && (a.ActionID == ApproveActionID || a.ActionID == DenyActionID) {
				stage, partial, ok := homeClick(a.BlockID, a.Value)
				if !ok || len(a.Value) > approvebot.MaxIDLength {
					return interaction{}, errors.New("payload: a Home tab button's block_id or value is not approvebot's")
				}
				c.Home, c.HomeStage, c.Partial, c.RequestID = true, stage, partial, a.Value
				c.Decision = approvebot.Deny
				if a.ActionID == ApproveActionID {
					// The Home tab's Approve went through Slack's confirm
					// dialog: the second step confirm_approve asks for.
					c.Decision, c.Confirmed = approvebot.Allow, true
				}
				return in, who()
			}
		}
	}
	if act == nil {
		return interaction{}, errNotOurs
	}
	if ic.Container.Type == "view" {
		if ic.View.CallbackID != FullViewCallbackID {
			return interaction{}, errNotOurs
		}
		if in.viewID == "" || ic.View.PrivateMetadata == "" {
			return interaction{}, errors.New("payload: view.id or view.private_metadata is missing")
		}
		in.kind, in.metadata = kindNextPage, ic.View.PrivateMetadata
		return in, who()
	}
	if ic.Container.Type != "" && ic.Container.Type != "message" {
		return interaction{}, errNotOurs
	}
	if act.Value == "" || len(act.Value) > approvebot.MaxIDLength {
		return interaction{}, errNotOurs
	}
	c.RequestID = act.Value
	c.Channel = first(ic.Container.ChannelID, ic.Channel.ID)
	c.MessageTS = first(ic.Container.MessageTs, ic.Message.Timestamp)
	switch act.ActionID {
	case ApproveActionID:
		c.Decision = approvebot.Allow
	case ApproveConfirmActionID:
		// Slack shows this button's confirm dialog before it sends the click.
		c.Decision, c.Confirmed = approvebot.Allow, true
	case DenyActionID, DenyReasonActionID, ApproveCommentActionID:
		in.kind, c.Decision, in.rule = kindReasonOpen, approvebot.Deny, approvebot.ReasonOptional
		if act.ActionID == DenyReasonActionID {
			in.rule = approvebot.ReasonRequired
		}
		if act.ActionID == ApproveCommentActionID {
			c.Decision = approvebot.Allow
		}
		if in.triggerID == "" {
			return interaction{}, errors.New("payload: trigger_id is missing")
		}
	case ViewAllActionID:
		in.kind = kindViewAll
		if in.triggerID == "" {
			return interaction{}, errors.New("payload: trigger_id is missing")
		}
	}
	if err := who(); err != nil {
		return interaction{}, err
	}
	switch {
	case c.Channel == "":
		return interaction{}, errors.New("payload: container.channel_id and channel.id are missing")
	case c.MessageTS == "":
		return interaction{}, errors.New("payload: container.message_ts and message.ts are missing")
	}
	return in, nil
}

// reviewAction reports whether id is one of the review buttons'.
func reviewAction(id string) bool {
	switch id {
	case ApproveActionID, ApproveConfirmActionID, ApproveCommentActionID, DenyActionID, DenyReasonActionID, ViewAllActionID:
		return true
	}
	return false
}

// reasonProblem says what is wrong with a reason typed for decision under
// rule, or "". The engine checks the same (policy.Vote); asking here keeps
// the modal open so the approver can fix it.
func reasonProblem(text, rule, decision string) string {
	clean := policy.CleanReason(text)
	if n := utf8.RuneCountInString(clean); n > approvebot.MaxReason {
		return fmt.Sprintf("At most %d characters (this is %d).", approvebot.MaxReason, n)
	}
	if clean == "" && rule == approvebot.ReasonRequired {
		if decision == approvebot.Allow {
			return "A comment is required to approve this request."
		}
		return "A reason is required to deny this request."
	}
	return ""
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
