// Package bot is the approval engine: a request's life (route, post, wait,
// decide, expire, answer), the HTTP API agents call, and the small interface
// chat platforms implement. Requests enter in Submit, wait in Wait, clicks
// land in Click, and every change is committed to the store before anything
// is said to an agent or shown on chat.
package bot

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/intake"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/signing"
	"github.com/approvebot/approvebot/store"
)

// Config holds the engine's parts.
type Config struct {
	Policy    *policy.Config
	Store     store.Store
	Platforms []Platform
	Clock     Clock
	Logger    *slog.Logger
	// Signer signs each decision once, when it is made (nil: unsigned).
	Signer *signing.Signer
	// Checkpoints, when set, get the audit log's signed head at every
	// resolution and at an interval (needs Signer).
	Checkpoints *CheckpointConfig
	// Retention, when above 0, removes decided requests older than it
	// (retention.go; needs Signer).
	Retention time.Duration
	// InboxURL, when set, is where the web inbox shows a request:
	// InboxURL + its id. Chat messages link to it.
	InboxURL string
	// Workers is how many outbox jobs run at once (default 64). A job
	// spends nearly all its time waiting, on the platform's answer and then
	// on a commit shared with everything else being written; with too few
	// workers, posting falls behind a burst of requests.
	Workers int
}

// Engine runs approval requests.
type Engine struct {
	// policy routes new requests; Reload swaps it whole. Requests already
	// open keep the chain they were given.
	policy    atomic.Pointer[policy.Config]
	store     store.Store
	platforms map[string]Platform
	order     []Platform // as configured: destinations are listed in this order
	clock     Clock
	log       *slog.Logger
	outbox    *outbox
	metrics   *metrics
	signer    *signing.Signer
	anchor    *checkpointer // nil without checkpoints
	callers   *callers
	retain    *retainer // nil without retention
	inboxURL  string

	mu sync.Mutex
	// watchers are called (each in a goroutine of its own) when a request
	// becomes final: held connections wait this way without a goroutine.
	watchers map[string][]*watcher
	timers   map[string]Timer
	nudges   nudgeTimers // reminders (remind.go)
}

// New builds an engine. Call Start before serving.
func New(cfg Config) (*Engine, error) {
	if cfg.Policy == nil || cfg.Store == nil {
		return nil, errors.New("engine: policy and store are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	e := &Engine{
		store:     cfg.Store,
		platforms: map[string]Platform{},
		clock:     cfg.Clock,
		log:       slog.New(LogRequests(cfg.Logger.Handler())),
		signer:    cfg.Signer,
		inboxURL:  cfg.InboxURL,
		watchers:  map[string][]*watcher{},
		timers:    map[string]Timer{},
	}
	e.policy.Store(cfg.Policy)
	for _, p := range cfg.Platforms {
		e.platforms[p.Name()] = p
	}
	e.order = cfg.Platforms
	e.callers = newCallers(cfg.Clock, cfg.Policy.Callers)
	e.outbox = newOutbox(e, cfg.Workers, cfg.Policy.Delivery.Timeout)
	e.metrics = newMetrics(e)
	cfg.Store.Watch(func(c store.Commit) {
		if len(c.Jobs) > 0 {
			e.outbox.add(c.Jobs, c.Request)
		}
		if c.Status.Final() {
			e.finishedElsewhere(c.ID)
		}
	})
	cfg.Store.OnResolved(e.seal)
	if cfg.Checkpoints != nil {
		if cfg.Signer == nil {
			return nil, errors.New("engine: audit checkpoints need a signer")
		}
		e.anchor = newCheckpointer(e, *cfg.Checkpoints)
	}
	if cfg.Retention > 0 {
		if cfg.Signer == nil {
			return nil, errors.New("engine: retention needs a signer")
		}
		pruner, ok := cfg.Store.(Pruner)
		if !ok {
			return nil, errors.New("engine: retention needs a store that can prune its audit log")
		}
		e.retain = &retainer{e: e, r: &Retention{Store: pruner, Signer: cfg.Signer, Keep: cfg.Retention, Checkpoints: cfg.Checkpoints, Logger: cfg.Logger}}
	}
	return e, nil
}

// Policy is the configuration now in force.
func (e *Engine) Policy() *policy.Config { return e.policy.Load() }

// SetPolicy makes cfg the configuration new requests are routed by, and
// its callers' limits the ones they are held to. Requests already open keep
// their chain, groups and deadline.
func (e *Engine) SetPolicy(cfg *policy.Config) {
	e.policy.Store(cfg)
	e.callers.configure(cfg.Callers)
}

// Start reconciles with the store, as after a crash or a deploy: every
// pending request gets its deadline back (those already past expire now),
// and every chat side effect still owed is queued. It then starts the outbox
// workers, which run until Drain flushes and stops them (or, abruptly, until
// ctx ends).
func (e *Engine) Start(ctx context.Context) error {
	var due []string
	err := e.store.EachPending(func(r *approvebot.Request) error {
		// Each caller's pending count, and its open requests by body.
		e.callers.restore(r)
		if !e.clock.Now().Before(r.Deadline) {
			due = append(due, r.ID)
			return nil
		}
		e.arm(r.ID, r.Deadline)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reconcile pending requests: %w", err)
	}
	jobs, err := e.store.Jobs()
	if err != nil {
		return fmt.Errorf("reconcile outbox: %w", err)
	}
	if e.anchor != nil {
		if err := e.anchor.start(); err != nil {
			return fmt.Errorf("audit checkpoints: %w", err)
		}
	}
	e.outbox.add(jobs, nil)
	e.outbox.start(ctx)
	if err := e.rearmNudges(); err != nil {
		return fmt.Errorf("reconcile reminders: %w", err)
	}
	for _, id := range due {
		e.expire(id)
	}
	if e.retain != nil {
		e.retain.start()
	}
	e.log.Info("reconciled", "pending", e.pendingTimers(), "expired_while_down", len(due), "outbox", len(jobs))
	return nil
}

// Drain flushes the outbox (waiting at most until ctx ends), stops its
// workers and disarms the deadline timers: the store is about to close, and
// the next start re-arms every pending deadline from it.
func (e *Engine) Drain(ctx context.Context) {
	e.retain.stop()
	e.outbox.drain(ctx)
	e.mu.Lock()
	for id, t := range e.timers {
		t.Stop()
		delete(e.timers, id)
	}
	e.mu.Unlock()
	e.nudges.stopAll()
	e.anchor.close(ctx) // the log's last head, before the store closes
}

// Store is the engine's store.
func (e *Engine) Store() store.Store { return e.store }

// SubmitOptions are what the HTTP layer knows about a submission.
type SubmitOptions struct {
	Caller         string
	IdempotencyKey string        // legacy bodies: the Idempotency-Key header
	Wait           time.Duration // Prefer: wait=N; 0 means the route's timeout
}

// Submit opens a request, or returns the existing one when this is a retry
// of it. The returned request may already be final (no route, expired,
// undeliverable, or decided earlier).
func (e *Engine) Submit(ctx context.Context, sub *intake.Submission, o SubmitOptions) (*approvebot.Request, error) {
	now := e.clock.Now()
	r := &approvebot.Request{
		// Agents choose schema 1.0 ids, unique per caller only: the store
		// keys every request by an id of approvebot's, and finds a 1.0
		// request by (caller, approval_request_id).
		ID:             newID(),
		Schema:         sub.Schema,
		Caller:         o.Caller,
		IdempotencyKey: o.IdempotencyKey,
		Digest:         sub.Digest,
		BodyDigest:     sub.BodyDigest,
		Fields:         sub.Fields,
		Context:        sub.Context,
		ActionBinding:  sub.ActionBinding,
		CreatedAt:      now,
		Status:         approvebot.StatusPending,
		Version:        1,
	}
	routed, rerr := e.policy.Load().Route(o.Caller, sub.Fields, sub.Schema)
	var forbidden *policy.ForbiddenError
	if errors.As(rerr, &forbidden) {
		// Refused before anything is written: the caller asked for
		// approvers it may not ask.
		e.log.Warn("request refused: caller may not request its destination", "caller", o.Caller, "reason", forbidden.Reason)
		return nil, approvebot.Errorf(approvebot.EForbidden, "%s", forbidden.Reason)
	}
	timeout := routed.Timeout
	if timeout <= 0 {
		timeout = policy.DefaultTimeout
	}
	if o.Wait > 0 && o.Wait < timeout {
		timeout = o.Wait
	}
	r.Deadline = now.Add(timeout)
	if sub.Schema == approvebot.SchemaV1 {
		exp, err := sub.ExpiresAt()
		if err != nil {
			return nil, approvebot.FieldError("expires_at", "%v", err)
		}
		if exp.Before(r.Deadline) {
			r.Deadline = exp
		}
	}

	var noRoute *policy.NoRouteError
	switch {
	case errors.As(rerr, &noRoute):
		policy.Expire(r, approvebot.StatusNoRoute, noRoute.Reason, now)
	case rerr != nil:
		return nil, fmt.Errorf("route: %w", rerr)
	case sub.Schema == approvebot.SchemaV1 && !now.Before(r.Deadline):
		r.Chain = routed.Chain
		policy.Expire(r, approvebot.StatusExpired, "expires_at "+sub.Fields.ExpiresAt+" had passed when the request arrived", now)
	default:
		r.Chain = routed.Chain
		r.Destinations = destinations(r.Chain, e.order)
		if !hasLive(r) {
			policy.Expire(r, approvebot.StatusUndeliverable, "no channel on a configured platform for "+groupList(r.Chain.Stages[0]), now)
		}
	}
	r.Deadline = r.Deadline.Round(0)
	r.Nudge = nextNudge(r)
	// The chain and deadline are fixed from here on; recording them lets
	// audit verification prove the stored request still has them.
	asked := requestedDetail{
		Schema: r.Schema, Digest: r.Digest, BodyDigest: r.BodyDigest, Fields: r.Fields, Chain: r.Chain, Deadline: r.Deadline,
		NaiveTimes: sub.Naive, // had no UTC offset; read as UTC
		// Recorded as asked; approvebot never approves on timeout either way.
		FailClosedOnTimeout: sub.Fields.FailClosedOnTimeout,
	}
	events := []approvebot.Event{event(approvebot.EventRequested, r.ID, now, o.Caller, asked)}
	if r.Status.Final() {
		events = append(events, resolvedEvent(r, now))
	}

	// The caller's cap of pending requests, and its identical open
	// request, are checked in the store's transaction: after a retry of an
	// existing request has been found (it always attaches), before
	// anything is written.
	var (
		stored  *approvebot.Request
		created bool
		err     error
		twin    *attachError
		limited *LimitError
		notTwin string // an open twin routed elsewhere: do not attach to it
	)
	for {
		var admit func() error
		counted := false
		if !r.Status.Final() {
			key := twinKey(r)
			admit = func() error {
				added, err := e.callers.admit(r, key, notTwin)
				counted = counted || added
				return err
			}
		}
		stored, created, err = e.store.CreateAdmitted(r, admit, events...)
		if counted && (err != nil || !created) {
			e.callers.closed(r.Caller, r.ID) // counted only once stored
		}
		if !errors.As(err, &twin) {
			break
		}
		got, gerr := e.store.Get(twin.id)
		if gerr != nil {
			return nil, e.storeError(gerr)
		}
		if sameRouting(got.Chain, r.Chain) {
			e.log.InfoContext(WithRequestID(ctx, twin.id), "identical request attached", "caller", o.Caller)
			return got, nil
		}
		notTwin = twin.id // the configuration changed since: a request of its own
	}
	switch {
	case errors.As(err, &limited):
		e.metrics.limited.WithLabelValues(limited.Limit).Inc()
		e.log.Warn("request refused: caller over its limit", "caller", o.Caller, "limit", limited.Limit)
		return nil, limited
	case err != nil:
		return nil, e.storeError(err)
	}
	if !created {
		if stored.Caller != o.Caller || stored.Digest != r.Digest {
			return nil, e.conflict(ctx, stored, r, now)
		}
		return stored, nil
	}
	e.metrics.requests.WithLabelValues(stored.Schema).Inc()
	if stored.Status.Final() {
		e.metrics.resolved.WithLabelValues(string(stored.Status)).Inc()
		e.anchor.resolved()
	} else {
		e.arm(stored.ID, stored.Deadline)
		e.armNudge(stored.ID, stored.Nudge)
	}
	e.log.InfoContext(WithRequestID(ctx, stored.ID), "request opened", "caller", o.Caller, "status", string(stored.Status),
		"groups", groupList(firstStage(stored.Chain)), "deadline", stored.Deadline)
	return stored, nil
}

// requestedDetail is the detail of a request's approval_requested event.
// Its fields are in the order of their names, so it encodes as the map of
// the same keys did (encoding/json sorts a map's keys), without sorting or
// boxing a value per key on every request.
type requestedDetail struct {
	BodyDigest          string            `json:"body_digest"`
	Chain               approvebot.Chain  `json:"chain"`
	Deadline            time.Time         `json:"deadline"`
	Digest              string            `json:"digest"`
	FailClosedOnTimeout *bool             `json:"fail_closed_on_timeout,omitempty"`
	Fields              approvebot.Fields `json:"fields"`
	NaiveTimes          []string          `json:"naive_times,omitempty"`
	Schema              string            `json:"schema"`
}

// eventConflict records a submission refused because its id or
// Idempotency-Key belongs to another request: ADR-0030 has conflicting
// submissions rejected and audited.
const eventConflict = "approval_conflict_refused"

// conflict audits a submission that reused stored's id or idempotency key
// for a different request, and returns the 409 its caller gets. Another
// caller is not told whose the id is.
func (e *Engine) conflict(ctx context.Context, stored, r *approvebot.Request, now time.Time) error {
	_, err := e.store.Update(stored.ID, func(*approvebot.Request) (store.Change, error) {
		return store.Change{Abort: true, Events: []approvebot.Event{event(eventConflict, stored.ID, now, r.Caller, map[string]any{
			"schema": r.Schema, "digest": r.Digest, "idempotency_key": r.IdempotencyKey, "same_caller": stored.Caller == r.Caller,
		})}}, nil
	})
	if err != nil {
		e.log.ErrorContext(WithRequestID(ctx, stored.ID), "audit conflicting submission", "err", err)
	}
	sameID := r.Schema == approvebot.SchemaV1 && stored.Schema == approvebot.SchemaV1 &&
		stored.Caller == r.Caller && stored.Fields.ApprovalRequestID == r.Fields.ApprovalRequestID
	switch {
	case !sameID: // found by the caller's own Idempotency-Key
		return &approvebot.Error{Code: approvebot.EConflict, Field: "Idempotency-Key",
			Message: fmt.Sprintf("Idempotency-Key %q was already used for a different request body (request %s)", r.IdempotencyKey, stored.PublicID())}
	default:
		return approvebot.Errorf(approvebot.EConflict,
			"approval_request_id %s is already in use for a different request (input digest differs)", stored.PublicID())
	}
}

// storeError turns a store failure into what the caller sees: the request was
// not recorded, so it was not approved.
func (e *Engine) storeError(err error) error {
	e.log.Error("store write failed", "err", err)
	if errors.Is(err, store.ErrFull) {
		return approvebot.Errorf(approvebot.EUnavailable, "approvebot could not record the request: its storage is full; it was not approved")
	}
	return approvebot.Errorf(approvebot.EUnavailable, "approvebot could not record the request (storage unavailable); it was not approved")
}

// Get returns a stored request.
func (e *Engine) Get(id string) (*approvebot.Request, error) { return e.store.Get(id) }

// Lookup finds caller's request by the id the caller knows it by: a schema
// 1.0 approval_request_id first, then an id approvebot gave. Another
// caller's request is not found.
func (e *Engine) Lookup(caller, id string) (*approvebot.Request, error) {
	r, err := e.store.Lookup(caller, id)
	if errors.Is(err, store.ErrNotFound) {
		r, err = e.store.Get(id)
	}
	if err != nil {
		return nil, err
	}
	if r.Caller != caller {
		return nil, store.ErrNotFound
	}
	return r, nil
}

// Wait blocks until the request is final or ctx ends, and returns it as stored.
func (e *Engine) Wait(ctx context.Context, id string) (*approvebot.Request, error) {
	ch := make(chan *approvebot.Request, 1)
	cancel := e.Watch(id, func(r *approvebot.Request) { ch <- r }) // buffered: never blocks
	defer cancel()

	// Only the status is read before parking, and the request is read
	// again when the wait ends: decoding the whole request here would grow
	// this goroutine's stack and keep a copy on the heap, and with
	// thousands of agents held both are kept for minutes.
	if st, err := e.store.Status(id); err != nil || st.Final() {
		if err != nil {
			return nil, err
		}
		return e.store.Get(id)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		if r, err := e.store.Get(id); err == nil {
			return r, ctx.Err()
		}
		return nil, ctx.Err()
	}
}

type watcher struct {
	fn func(*approvebot.Request)
}

// Watch calls fn, once, with the request as committed when it becomes
// final, unless the returned cancel is called first. It is Wait without a
// goroutine parked for the whole wait. The caller checks the status after
// Watch returns, so a request finished just before is not missed.
func (e *Engine) Watch(id string, fn func(*approvebot.Request)) (cancel func()) {
	w := &watcher{fn: fn}
	e.mu.Lock()
	e.watchers[id] = append(e.watchers[id], w)
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		ws := e.watchers[id]
		for i, x := range ws {
			if x == w {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(e.watchers, id)
		} else {
			e.watchers[id] = ws
		}
	}
}

// finished wakes everyone waiting on a request that became final and drops
// its timer. The watchers get r itself, as committed, rather than reading it
// back from the store on the path to the agent's answer; r must not be
// changed after this call (it is shared, read-only).
func (e *Engine) finished(r *approvebot.Request) {
	e.release(r)
	e.anchor.resolved()
	e.metrics.resolved.WithLabelValues(string(r.Status)).Inc()
	e.metrics.decision.Observe(r.Resolution.ResolvedAt.Sub(r.CreatedAt).Seconds())
	// A timeout or a cancel ends a request with no context at hand: the
	// line names the request itself.
	e.log.Info("request resolved", "request_id", r.ID, "status", string(r.Status), "approver", r.Resolution.Approver)
}

// release lets go of what this process holds open for a request that is
// final: its waiters are answered, its timer and reminder dropped, its
// caller's count of open requests lowered. It may run more than once for
// one request.
func (e *Engine) release(r *approvebot.Request) {
	e.mu.Lock()
	watchers := e.watchers[r.ID]
	delete(e.watchers, r.ID)
	if t, ok := e.timers[r.ID]; ok {
		t.Stop()
		delete(e.timers, r.ID)
	}
	e.mu.Unlock()
	e.nudges.set(r.ID, nil)
	e.callers.closed(r.Caller, r.ID)
	e.homeChanged()
	for _, w := range watchers {
		go w.fn(r) // a watcher may write to an agent's connection: never inside a commit
	}
}

// finishedElsewhere releases a request that a commit made final without
// this engine's transition: one by another writer of the store (another
// replica on a shared store, an operator's command). Transitions made here
// release their request before watchers hear of the commit, so for them
// this finds nothing held and reads nothing.
func (e *Engine) finishedElsewhere(id string) {
	e.mu.Lock()
	_, timed := e.timers[id]
	waited := len(e.watchers[id]) > 0
	e.mu.Unlock()
	if !timed && !waited {
		return
	}
	r, err := e.store.Get(id)
	if err != nil {
		// The waiters stay held and the deadline's timer armed: the
		// timer's transition reads the request again and finds it final.
		e.log.Warn("a request finished elsewhere could not be read", "request_id", id, "err", err)
		return
	}
	if r.Status.Final() {
		e.release(r)
	}
}

func (e *Engine) arm(id string, deadline time.Time) {
	d := deadline.Sub(e.clock.Now())
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.timers[id]; ok {
		t.Stop()
	}
	e.timers[id] = e.clock.AfterFunc(d, func() { e.expire(id) })
}

func (e *Engine) pendingTimers() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.timers)
}

// expire ends a request whose deadline has come, unless it was decided first.
func (e *Engine) expire(id string) {
	now := e.clock.Now()
	var changed bool
	r, err := e.store.Update(id, func(r *approvebot.Request) (store.Change, error) {
		changed = false
		if r.Status.Final() {
			return store.Change{Abort: true}, nil
		}
		if now.Before(r.Deadline) {
			return store.Change{Abort: true}, nil
		}
		reason := timeoutReason(r)
		policy.Expire(r, approvebot.StatusTimedOut, reason, now)
		outcomeNote(r, now)
		changed = true
		return store.Change{Visible: true, Events: []approvebot.Event{
			event(approvebot.EventExpired, r.ID, now, "system:timeout", map[string]any{"reason": reason}),
			resolvedEvent(r, now),
		}}, nil
	}, func(r *approvebot.Request) {
		if changed {
			e.finished(r)
		}
	})
	if err != nil {
		// The deadline index keeps the request pending; retry soon so a
		// timeout is never lost to a transient store error.
		// A deadline's timer has no context: the line names the request.
		e.log.Error("expire failed; retrying", "request_id", id, "err", err)
		if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrClosed) {
			e.mu.Lock()
			e.timers[id] = e.clock.AfterFunc(time.Second, func() { e.expire(id) })
			e.mu.Unlock()
		}
		return
	}
	switch {
	case changed:
	case r.Status.Final():
		// Decided elsewhere, and not released when that commit was heard
		// of: the deadline is the backstop. A request released already
		// (a click decided it as the deadline came) is left be.
		e.mu.Lock()
		_, held := e.timers[id]
		e.mu.Unlock()
		if held {
			e.release(r)
		}
	default:
		e.arm(id, r.Deadline)
	}
}

// Cancel withdraws caller's pending request (DELETE /v1/approvals/{id}):
// it ends denied with status cancelled, every copy says the agent withdrew
// it, held callers are answered, and later clicks are told. Withdrawing a
// request already withdrawn returns it as it is; one decided or ended
// otherwise returns it with ErrFinal. Another caller's request is not found.
func (e *Engine) Cancel(caller, id string) (*approvebot.Request, error) {
	found, err := e.Lookup(caller, id)
	if err != nil {
		return nil, err
	}
	now := e.clock.Now()
	var changed bool
	r, err := e.store.Update(found.ID, func(r *approvebot.Request) (store.Change, error) {
		changed = false
		if r.Status.Final() {
			return store.Change{Abort: true}, nil
		}
		reason := "withdrawn by the agent (caller " + caller + ") before a decision"
		policy.Expire(r, approvebot.StatusCancelled, reason, now)
		outcomeNote(r, now)
		changed = true
		return store.Change{Visible: true, Events: []approvebot.Event{
			event(approvebot.EventCancelled, r.ID, now, "caller:"+caller, map[string]any{"reason": reason}),
			resolvedEvent(r, now),
		}}, nil
	}, func(r *approvebot.Request) {
		if changed {
			e.finished(r)
		}
	})
	if err != nil {
		return nil, e.storeError(err)
	}
	if changed {
		return r, nil
	}
	if r.Status != approvebot.StatusCancelled {
		return r, ErrFinal
	}
	return r, nil
}

// ErrFinal is Cancel's answer for a request that ended otherwise first.
var ErrFinal = errors.New("the request is already final")

// timeoutReason says why a deadline came: the route's timeout (or the
// caller's Prefer: wait), or a schema 1.0 request's expires_at. It is derived
// from the stored request, so it reads the same after a restart.
func timeoutReason(r *approvebot.Request) string {
	if r.Schema == approvebot.SchemaV1 {
		if exp, _, err := intake.ParseTime(r.Fields.ExpiresAt); err == nil && !exp.After(r.Deadline) {
			return "timed out at expires_at " + r.Fields.ExpiresAt + " without a decision"
		}
	}
	return fmt.Sprintf("timed out after %s without a decision", seconds(r.Deadline.Sub(r.CreatedAt)))
}

// Click counts a verified click. It never returns an error: whatever goes
// wrong, the click is refused (nothing changes) and the clicker is told why.
func (e *Engine) Click(ctx context.Context, b approvebot.Ballot, id string) ClickResult {
	ctx = WithRequestID(ctx, id)
	r, err := e.store.Get(id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return ClickResult{Message: "Nothing changed: approvebot does not know this request."}
		}
		e.log.ErrorContext(ctx, "click: load request", "err", err)
		return ClickResult{Message: "Nothing changed: approvebot could not read the request. Try again in a moment."}
	}
	if r.Status.Final() {
		e.refused(ctx, r.ID, b, policy.RefuseDecided)
		return ClickResult{Message: "Nothing changed: " + policy.Describe(r) + ".", View: View(r, -1)}
	}
	p := e.platforms[b.Platform]
	if p == nil {
		return ClickResult{Message: "Nothing changed: this platform is not configured."}
	}
	who, err := p.Identify(ctx, b.Approver, b.Ref, policy.Usergroups(r.Chain, b.Platform))
	if err != nil {
		e.log.WarnContext(ctx, "click: cannot identify clicker", "user", b.Approver.UserID, "err", err)
		if errors.Is(err, approvebot.ErrIneligible) {
			e.refused(ctx, r.ID, b, "account_ineligible")
			return ClickResult{Message: "Nothing changed: your account may not approve requests (it is deactivated, a bot, anonymous, or of another organisation)."}
		}
		e.refused(ctx, r.ID, b, "identity_unverified")
		return ClickResult{Message: "Nothing changed: approvebot could not verify who you are. Try again in a moment."}
	}
	b.Approver = who
	now := e.clock.Now()
	var out policy.VoteOutcome
	r, err = e.store.Update(id, func(r *approvebot.Request) (store.Change, error) {
		// Checked in the transaction: the message's record (and whether it
		// showed everything) may be committed a moment after the click.
		if msg := unseenApproval(r, b); msg != "" {
			out = policy.VoteOutcome{RefusalCode: RefusePartialView, Message: msg}
			return store.Change{Abort: true, Events: []approvebot.Event{refusedEvent(r.ID, b, out.RefusalCode, now)}}, nil
		}
		out = policy.Vote(e.Policy().Platforms, r, b, now)
		if !out.Counted {
			return store.Change{Abort: true, Events: []approvebot.Event{refusedEvent(r.ID, b, out.RefusalCode, now)}}, nil
		}
		evs := []approvebot.Event{event(approvebot.EventEntry, r.ID, now, who.Principal(), map[string]any{
			"entry": entryRecord(*out.Entry), "group": out.Entry.Group, "approver": who, "platform": b.Platform, "message": b.Ref,
			"full_view": b.FullView,
		})}
		voteNotes(r, out, who, now)
		if out.StageOpened {
			evs = append(evs, event(approvebot.EventStage, r.ID, now, "", map[string]any{"stage": r.Stage}))
		}
		if out.Decided {
			evs = append(evs, resolvedEvent(r, now))
		}
		return store.Change{Visible: true, Events: evs}, nil
	}, func(r *approvebot.Request) {
		// The waiting agent first; the chat updates this decision owes are
		// announced after.
		if out.Decided {
			e.finished(r)
		}
	})
	if err != nil {
		e.log.ErrorContext(ctx, "click: store", "err", err)
		return ClickResult{Message: "Nothing changed: approvebot could not record your decision. Try again in a moment."}
	}
	if out.Counted {
		e.homeChanged()
		e.metrics.clicks.WithLabelValues(b.Platform, "counted").Inc()
		e.log.InfoContext(ctx, "vote counted", "user", who.Principal(), "decision", b.Decision, "decided", out.Decided)
	} else {
		e.metrics.clicks.WithLabelValues(b.Platform, "refused").Inc()
		e.log.InfoContext(ctx, "click refused", "user", who.Principal(), "why", out.RefusalCode)
	}
	return ClickResult{Counted: out.Counted, Decided: out.Decided, Message: out.Message, View: View(r, -1)}
}

var _ Viewer = (*Engine)(nil)

// RefusePartialView is the refusal code of an approval clicked on a message
// that could not show every bound fact.
const RefusePartialView = "not_all_shown"

// unseenApproval refuses an approval from a message the platform recorded as
// partial (it could not show every bound fact, so it had no Approve button):
// no approval counts unless every bound value was on screen where it was
// clicked. The full view (b.FullView) showed them all; a denial needs no such
// proof.
func unseenApproval(r *approvebot.Request, b approvebot.Ballot) string {
	if b.Decision != approvebot.Allow || b.FullView {
		return ""
	}
	if b.Home {
		// The home surface shows what the posted copies show: if one of
		// them could not show every bound fact, neither could it.
		partial := b.Ref.Partial
		for _, d := range r.Destinations {
			partial = partial || d.Platform == b.Platform && d.State == approvebot.DeliveryPosted && d.Ref.Partial
		}
		if partial {
			return "Nothing changed: this request is too large to show in full here, so it cannot be approved from here. Open \"View all\" on its message and approve from there."
		}
		return ""
	}
	for _, d := range r.Destinations {
		if d.Platform == b.Platform && d.State == approvebot.DeliveryPosted && d.Ref.ID == b.Ref.ID && d.Ref.Partial {
			return "Nothing changed: this message could not show the whole action, so it cannot approve it. Open \"View all\" and approve from there."
		}
	}
	return ""
}

// FullView returns the whole view of a request for a surface opened from the
// message at ref, which must be one approvebot posted for the request on
// platform: a click elsewhere learns nothing about it.
func (e *Engine) FullView(ctx context.Context, platform string, ref approvebot.MessageRef, id string) (approvebot.Message, error) {
	r, err := e.store.Get(id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return approvebot.Message{}, errors.New("approvebot does not know this request")
		}
		e.log.ErrorContext(WithRequestID(ctx, id), "full view: load request", "err", err)
		return approvebot.Message{}, errors.New("approvebot could not read the request; try again in a moment")
	}
	for _, d := range r.Destinations {
		if d.Platform == platform && d.State == approvebot.DeliveryPosted && d.Ref.ID == ref.ID &&
			(d.Ref.Channel == ref.Channel || d.Ref.Conversation != "" && d.Ref.Conversation == ref.Conversation) {
			return View(r, -1), nil
		}
	}
	return approvebot.Message{}, errors.New("approvebot does not know this message for the request")
}

// refused audits a click that was turned away before it reached the vote.
func (e *Engine) refused(ctx context.Context, id string, b approvebot.Ballot, code string) {
	now := e.clock.Now()
	_, err := e.store.Update(id, func(r *approvebot.Request) (store.Change, error) {
		return store.Change{Abort: true, Events: []approvebot.Event{refusedEvent(id, b, code, now)}}, nil
	})
	if err != nil {
		e.log.ErrorContext(ctx, "audit refused click", "err", err)
	}
}

func refusedEvent(id string, b approvebot.Ballot, code string, now time.Time) approvebot.Event {
	return event(approvebot.EventRefused, id, now, b.Approver.Principal(), map[string]any{
		"why": code, "decision": b.Decision, "approver": b.Approver, "platform": b.Platform, "message": b.Ref,
	})
}

func resolvedEvent(r *approvebot.Request, now time.Time) approvebot.Event {
	return event(approvebot.EventResolved, r.ID, now, r.Resolution.Approver, map[string]any{
		"resolution": r.Resolution, "status": r.Status,
		"action_digest": r.Fields.ActionDigest, "policy_version": r.Fields.PolicyVersion,
		"approval_chain_version": r.Chain.Version,
	})
}

// entryRecord is an entry with every ADR field, for the audit log.
func entryRecord(e approvebot.Entry) map[string]any {
	return map[string]any{
		"approval_request_id": e.ApprovalRequestID, "chain_entry_id": e.ChainEntryID,
		"stage_index": e.StageIndex, "approver_kind": e.ApproverKind,
		"approver_identity": e.ApproverIdentity, "identity_assurance": e.IdentityAssurance,
		"decision": e.Decision, "reason_code": e.ReasonCode, "input_digest": e.InputDigest,
		"previous_entry_digest": e.PreviousEntryDigest, "decided_at": e.DecidedAt,
		"entry_digest": e.EntryDigest,
	}
}

func event(typ, id string, at time.Time, actor string, detail any) approvebot.Event {
	var raw json.RawMessage
	if detail != nil {
		b, err := json.Marshal(detail)
		if err != nil {
			b, _ = json.Marshal(map[string]string{"marshal_error": err.Error()})
		}
		raw = b
	}
	return approvebot.Event{Type: typ, RequestID: id, At: at, Actor: actor, Detail: raw}
}

// destinations lists every channel of every stage, one per (platform,
// channel) within a stage. Only the first stage's are queued now.
func destinations(c approvebot.Chain, platforms []Platform) []approvebot.Destination {
	var out []approvebot.Destination
	for si, s := range c.Stages {
		state := approvebot.DeliveryWaiting
		if si == 0 {
			state = approvebot.DeliveryQueued
		}
		out = append(out, stageDestinations(s, si, state, platforms)...)
	}
	return out
}

// stageDestinations lists where stage si shows its groups' request, on
// every platform a group has a side on, one per (platform, channel).
func stageDestinations(s approvebot.Stage, si int, state string, platforms []Platform) []approvebot.Destination {
	var out []approvebot.Destination
	index := map[string]int{}
	for _, g := range s.Groups {
		for _, p := range platforms {
			side, ok := g.Side(p.Name())
			if !ok {
				continue
			}
			for _, channel := range sideDestinations(p, side, si) {
				key := p.Name() + "\x00" + channel
				if i, ok := index[key]; ok {
					out[i].Groups = append(out[i].Groups, g.Name)
					continue
				}
				index[key] = len(out)
				out = append(out, approvebot.Destination{Platform: p.Name(), Channel: channel, Stage: si, Groups: []string{g.Name}, State: state})
			}
		}
	}
	return out
}

// sideDestinations is where p shows a request to a group's side: the
// side's channels, and each listed user's direct messages when the side
// asks for them, unless p places it itself.
func sideDestinations(p Platform, side approvebot.Side, stage int) []string {
	if d, ok := p.(Destiner); ok {
		return d.Destinations(side, stage)
	}
	out := slices.Clone(side.Channels)
	if side.DM {
		for _, u := range side.Users {
			out = append(out, approvebot.DirectMessage+u)
		}
	}
	return out
}

// hasLive reports whether some destination of the current stage is posted or
// may still be.
func hasLive(r *approvebot.Request) bool {
	for _, d := range r.Destinations {
		if d.Stage == r.Stage && (d.State == approvebot.DeliveryQueued || d.State == approvebot.DeliveryPosted) {
			return true
		}
	}
	return false
}

func firstStage(c approvebot.Chain) approvebot.Stage {
	if len(c.Stages) == 0 {
		return approvebot.Stage{}
	}
	return c.Stages[0]
}

func groupList(s approvebot.Stage) string {
	names := s.GroupNames()
	if len(names) == 0 {
		return "(no groups)"
	}
	out := names[0]
	for _, n := range names[1:] {
		out += ", " + n
	}
	return out
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%d s", int64(math.Round(d.Seconds())))
}

// newID makes a request id that sorts by creation time, then 64 random
// bits. bbolt keeps requests in a B+tree ordered by id: new ids then land on
// the last pages instead of one random page each, so a commit of many new
// requests writes a few pages, not one per request. The random half keeps
// ids unique and unguessable. The wall clock, not the engine's: the prefix
// only orders pages on disk, and must keep growing when a test's clock stands
// still or is set back for a new run.
func newID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano()))
	if _, err := rand.Read(b[8:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return "ar_" + hex.EncodeToString(b[:])
}
