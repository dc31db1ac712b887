package bot

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/store"
)

// How long chat side effects are retried. Posts give up after the delivery
// timeout (and never outlive the request's deadline): approvers who see a
// request too late cannot help, and the agent must hear "undeliverable" rather
// than wait out its timeout. Updates keep trying far longer, because a message
// still showing buttons for a closed request misleads people.
const (
	callTimeout     = 15 * time.Second
	updateGiveUp    = 6 * time.Hour
	backoffBase     = 250 * time.Millisecond
	backoffMax      = 30 * time.Second
	retryAfterLimit = 10 * time.Minute
)

// reasonRateLimited is a destination's failure when its platform's pace
// cannot fit the post before the request's deadline.
const reasonRateLimited = "rate limited"

// outbox drains the store's outbox: each job brings one destination up to
// date with its request (post it, or update it). Jobs are durable in the
// store; this is only the in-memory schedule of who runs what when. One job
// key never runs twice at once, and notifications that arrive while it runs
// make it run again, so the last state always reaches chat.
type outbox struct {
	e           *Engine
	workers     int
	postGiveUp  time.Duration
	mu          sync.Mutex
	cond        *sync.Cond // workers wait here for jobs
	idle        *sync.Cond // drain waits here for the queue to empty
	queue       []store.JobKey
	urgent      []store.JobKey // jobs handed their destination's turn: run first
	jobs        map[store.JobKey]*job
	running     int
	stopping    bool
	wg          sync.WaitGroup
	ctx         context.Context
	cancelCalls context.CancelFunc
	pace        *pacer
}

type job struct {
	// parked: waiting in the pacer for its destination's turn, holding no
	// worker; the pacer hands it back with turn set.
	queued, running, again, delayed, parked bool
	turn                                    *turn
	attempts                                int
	firstFailure                            time.Time
	// posted is a message the platform accepted but the store has not yet
	// recorded (the commit failed): the retry records it instead of posting
	// a second copy.
	posted *approvebot.MessageRef
	// like is the request as a commit announced it or a run read it, nil
	// until then: a run then reads only the request's state, as what it
	// was created with never changes.
	like *approvebot.Request
}

func newOutbox(e *Engine, workers int, postGiveUp time.Duration) *outbox {
	if postGiveUp <= 0 {
		postGiveUp = policy.DefaultDeliveryTimeout
	}
	o := &outbox{e: e, workers: workers, postGiveUp: postGiveUp, jobs: map[store.JobKey]*job{}}
	o.cond = sync.NewCond(&o.mu)
	o.idle = sync.NewCond(&o.mu)
	o.pace = newPacer(e.clock, o.wake, func(k store.JobKey) { o.wake(k, nil) })
	return o
}

// wake hands a parked job back to the workers: with its turn (t) when its
// destination's turn came, or without one when the pacer found it can no
// longer be posted in time (the next run then says so). A job still in the
// run that parked it runs again once that run is done.
func (o *outbox) wake(k store.JobKey, t *turn) {
	o.mu.Lock()
	defer o.mu.Unlock()
	j := o.jobs[k]
	if j == nil || !j.parked || o.stopping {
		o.pace.giveBack(t)
		return
	}
	j.parked, j.turn = false, t
	if j.running {
		j.again = true
		return
	}
	j.queued = true
	// A job with its turn goes before everything queued: its destination's
	// pace counts from the grant, so a wait here is a post made late.
	o.urgent = append(o.urgent, k)
	o.cond.Signal()
}

func (o *outbox) start(ctx context.Context) {
	o.ctx, o.cancelCalls = context.WithCancel(context.WithoutCancel(ctx))
	for range o.workers {
		o.wg.Add(1)
		go o.work()
	}
	// No goroutine waits on a context that never ends.
	context.AfterFunc(ctx, o.halt)
}

// halt stops the workers once their current job is done.
func (o *outbox) halt() {
	o.mu.Lock()
	o.stopping = true
	o.cond.Broadcast()
	o.idle.Broadcast()
	o.mu.Unlock()
	o.pace.stop()
}

// drain waits until no job is queued or running, then stops the workers.
// Jobs waiting out a backoff, and jobs not done by the time ctx ends
// (their calls are then cancelled), stay in the store for the next start.
func (o *outbox) drain(ctx context.Context) {
	if o.cancelCalls == nil { // never started
		return
	}
	stop := context.AfterFunc(ctx, func() {
		o.halt()
		o.cancelCalls()
	})
	defer stop()
	o.mu.Lock()
	for (len(o.queue) > 0 || len(o.urgent) > 0 || o.running > 0) && !o.stopping {
		o.idle.Wait()
	}
	o.mu.Unlock()
	o.halt()
	o.wg.Wait()
	o.cancelCalls()
}

// size is how many jobs are owed (queued, running or waiting to retry).
func (o *outbox) size() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.jobs)
}

// add queues the jobs keys name. like, when given, is their request as a
// commit announced it.
func (o *outbox) add(keys []store.JobKey, like *approvebot.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range keys {
		j := o.jobs[k]
		if j == nil {
			j = &job{}
			o.jobs[k] = j
		}
		if j.like == nil && like != nil && like.ID == k.ID {
			j.like = like
		}
		switch {
		case j.running:
			j.again = true
		case j.queued, j.delayed, j.parked:
			// A parked job reads the request afresh when its turn comes.
		default:
			j.queued = true
			o.queue = append(o.queue, k)
			o.cond.Signal()
		}
	}
}

func (o *outbox) work() {
	defer o.wg.Done()
	for {
		o.mu.Lock()
		for len(o.queue) == 0 && len(o.urgent) == 0 && !o.stopping {
			o.cond.Wait()
		}
		if o.stopping {
			o.mu.Unlock()
			return
		}
		var k store.JobKey
		if len(o.urgent) > 0 {
			k, o.urgent = o.urgent[0], o.urgent[1:]
		} else {
			k, o.queue = o.queue[0], o.queue[1:]
		}
		j := o.jobs[k]
		j.queued, j.running = false, true
		o.running++
		o.mu.Unlock()

		retry := o.run(k, j)
		o.finish(k, j, retry)
	}
}

// finish schedules what follows a job's run: a retry after a delay, another
// run for a change that came meanwhile, nothing while it waits for its turn,
// or its end.
func (o *outbox) finish(k store.JobKey, j *job, retry time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.running--
	j.running = false
	switch {
	case j.parked:
		j.again = false
	case retry > 0:
		j.delayed = true
		o.e.clock.AfterFunc(retry, func() {
			o.mu.Lock()
			j.delayed = false
			if !j.queued && !j.running && !j.parked {
				j.queued = true
				o.queue = append(o.queue, k)
				o.cond.Signal()
			}
			o.mu.Unlock()
		})
	case j.again:
		j.again = false
		j.queued = true
		if j.turn != nil { // handed its turn while this run was ending
			o.urgent = append(o.urgent, k)
		} else {
			o.queue = append(o.queue, k)
		}
		o.cond.Signal()
	default:
		delete(o.jobs, k)
	}
	if len(o.queue) == 0 && len(o.urgent) == 0 && o.running == 0 {
		o.idle.Broadcast()
	}
}

// A job's run is a small state machine. At each point it knows the
// destination and its request as stored, and what its last call (to the
// platform, the pacer or the store) answered; next, a pure function of
// that, names the one step to take; run takes it and feeds the answer
// back, until a step ends the run.

// action is one step of a job's run.
type action int

const (
	doForget       action = iota // the request is gone: nothing is owed
	doDone                       // the job's outcome is recorded: it is done
	doRetry                      // run the job again after a backoff
	doPark                       // wait in the pacer for the destination's turn
	doSettle                     // nothing to show: drop the job from the store's outbox
	doSkip                       // the request ended before it was posted: nobody can act on it, so showing it is noise
	doFail                       // give the destination up as failed
	doAwaitTurn                  // ask the pacer for the destination's turn
	doPost                       // post the request
	doRecordPost                 // record the message the platform accepted
	doReply                      // post the thread notes owed under the message
	doUpdate                     // bring the message up to date
	doRecordShown                // record the version the message now shows
	doGiveUpUpdate               // record that the message could not be updated
)

// call is what the last step asked of someone, whose answer next reads.
type call int

const (
	callNone   call = iota // nothing yet in this run
	callStore              // a store read or write
	callPace               // the pacer, for the destination's turn
	callPost               // the platform's Post
	callReply              // the platform's Reply, for every note owed
	callUpdate             // the platform's Update
)

// callAnswer is what a call answered.
type callAnswer struct {
	call call
	err  error
	pace verdict // callPace
	// failingFor is how long the destination's posts or updates have been
	// failing, this call included; pastDeadline, whether the request's
	// deadline had come when the post failed.
	failingFor   time.Duration
	pastDeadline bool
}

// jobView is what a job's run knows when it chooses its next step.
type jobView struct {
	gone       bool   // the request is not in the store
	hasDest    bool   // the request has the job's destination
	platform   string // the destination's platform
	configured bool   // that platform is configured
	dest       string // the destination's state (approvebot.Delivery*)
	final      bool   // the request is final
	unrecorded bool   // a post the platform accepted waits to be recorded
	turn       bool   // the job holds its destination's turn
	notesOwed  bool   // thread notes are owed under the posted message
	stale      bool   // the posted message shows an older version
	postGiveUp time.Duration
	last       callAnswer
}

// step is what next chose.
type step struct {
	do         action
	reason     string        // doFail, doGiveUpUpdate: why
	config     bool          // doFail: the configuration is at fault
	retryAfter time.Duration // doRetry: the wait the platform asked for
	holdLane   bool          // doRetry: every post to the destination waits retryAfter
}

// next chooses a job's next step: first from what the last call answered,
// then, when nothing was called or the call leaves the choice to the
// destination, from the destination's state.
func (v jobView) next() step {
	err := v.last.err
	switch v.last.call {
	case callStore:
		if err != nil {
			// The store's outbox still holds the job: this run must not
			// forget it.
			return step{do: doRetry}
		}
		return step{do: doDone}
	case callPace:
		switch v.last.pace {
		case waitFor:
			return step{do: doPark}
		case tooLate:
			return step{do: doFail, reason: reasonRateLimited}
		}
		return step{do: doPost}
	case callPost:
		if err == nil {
			return step{do: doRecordPost}
		}
		if approvebot.IsPermanent(err) || v.last.failingFor >= v.postGiveUp || v.last.pastDeadline {
			return step{do: doFail, reason: reasonOf(err)}
		}
		ra := approvebot.RetryAfter(err)
		return step{do: doRetry, retryAfter: ra, holdLane: ra > 0}
	case callReply:
		if err != nil {
			return step{do: doRetry, retryAfter: approvebot.RetryAfter(err)}
		}
		// The notes are dealt with: the message itself is next.
	case callUpdate:
		if err == nil {
			return step{do: doRecordShown}
		}
		if approvebot.IsPermanent(err) || v.last.failingFor >= updateGiveUp {
			return step{do: doGiveUpUpdate, reason: reasonOf(err)}
		}
		return step{do: doRetry, retryAfter: approvebot.RetryAfter(err)}
	}
	switch {
	case v.gone:
		return step{do: doForget}
	case !v.hasDest:
		return step{do: doSettle}
	case !v.configured:
		return step{do: doFail, reason: "platform " + v.platform + " is not configured", config: true}
	}
	switch v.dest {
	case approvebot.DeliveryQueued:
		switch {
		case v.final:
			return step{do: doSkip}
		case v.unrecorded:
			// Posted already; only the record of it is owed.
			return step{do: doRecordPost}
		case !v.turn:
			return step{do: doAwaitTurn}
		}
		return step{do: doPost}
	case approvebot.DeliveryPosted:
		switch {
		case v.notesOwed && v.last.call != callReply:
			return step{do: doReply}
		case v.stale:
			return step{do: doUpdate}
		}
	}
	return step{do: doSettle}
}

// run does one job once and returns how long to wait before retrying it (0:
// done, requeued by a notification, or parked until its destination's turn).
func (o *outbox) run(k store.JobKey, j *job) time.Duration {
	e := o.e
	ctx := WithRequestID(o.ctx, k.ID)
	// A turn this run does not spend on a post goes back to the pacer.
	o.mu.Lock()
	held, like := j.turn, j.like
	j.turn = nil
	o.mu.Unlock()
	defer func() { o.pace.giveBack(held) }()

	v := jobView{postGiveUp: o.postGiveUp, turn: held != nil}
	var r *approvebot.Request
	var err error
	if like != nil {
		r, err = e.store.Refresh(like)
	} else {
		r, err = e.store.Get(k.ID)
	}
	if err == nil && like == nil {
		o.mu.Lock()
		j.like = r
		o.mu.Unlock()
	}
	var (
		d       approvebot.Destination
		p       Platform
		version uint64
		msg     approvebot.Message
		now     time.Time
		ref     approvebot.MessageRef // a post the platform accepted
	)
	switch {
	case errors.Is(err, store.ErrNotFound):
		v.gone = true
	case err != nil:
		e.log.ErrorContext(ctx, "outbox: load", "err", err)
		v.last = callAnswer{call: callStore, err: err}
	case k.Dest < len(r.Destinations):
		d = r.Destinations[k.Dest]
		p = e.platforms[d.Platform]
		v.hasDest, v.platform, v.configured, v.dest = true, d.Platform, p != nil, d.State
		v.final, v.unrecorded = r.Status.Final(), j.posted != nil
		v.notesOwed, v.stale = d.Replied < len(r.Thread), d.Shown < r.Version
		version = r.Version
		msg = View(r, k.Dest)
		if e.inboxURL != "" {
			msg.Link = e.inboxURL + r.ID
		}
		now = e.clock.Now()
	}
	lane := d.Platform + "\x00" + d.Channel
	for {
		s := v.next()
		switch s.do {
		case doForget:
			return 0
		case doDone:
			j.attempts, j.firstFailure = 0, time.Time{}
			return 0
		case doRetry:
			return o.backoff(j, s.retryAfter)
		case doPark:
			return 0
		}
		var err error
		switch s.do {
		case doSettle:
			err = o.settle(k, r, nil)
		case doSkip:
			err = o.settle(k, r, skipped)
		case doFail:
			if v.last.call == callPace {
				e.log.WarnContext(ctx, "post cannot be made before the deadline at the platform's pace",
					"platform", d.Platform, "channel", d.Channel, "deadline", r.Deadline)
			}
			err = o.fail(k, r, s.reason, s.config)
		case doAwaitTurn:
			var interval time.Duration
			if pp, ok := p.(Paced); ok {
				interval = pp.PostInterval(d.Channel)
			}
			// Parked before asking: the turn may come before take returns.
			o.mu.Lock()
			j.parked = true
			o.mu.Unlock()
			t, verdict := o.pace.take(lane, interval, k, r.Deadline)
			if verdict != waitFor {
				o.mu.Lock()
				j.parked = false
				o.mu.Unlock()
			}
			if verdict == goNow {
				held = t
			}
			v.last = callAnswer{call: callPace, pace: verdict}
			continue
		case doPost:
			held = nil // spent: the post starts now, whatever comes of it
			ctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel() // held to the run's end, as the platform may still use it
			ref, err = p.Post(ctx, d.Channel, msg)
			e.metrics.delivery.WithLabelValues(d.Platform, "post", callResult(err)).Inc()
			v.last = callAnswer{call: callPost, err: err}
			if err == nil {
				e.log.InfoContext(ctx, "posted", "platform", d.Platform, "channel", d.Channel, "message", ref.ID)
				continue
			}
			if j.firstFailure.IsZero() {
				j.firstFailure = now
			}
			// Measured after the call: a call that hung until its timeout
			// counts, or a hanging platform would cost a second timeout.
			failedAt := e.clock.Now()
			v.last.failingFor, v.last.pastDeadline = failedAt.Sub(j.firstFailure), !failedAt.Before(r.Deadline)
			s := v.next()
			e.log.WarnContext(ctx, "post failed", "platform", d.Platform, "channel", d.Channel, "err", err, "giving_up", s.do == doFail)
			if s.holdLane {
				// The platform says when this destination takes posts
				// again: every job queued for it waits as long.
				o.pace.holdUntil(lane, failedAt.Add(min(s.retryAfter, retryAfterLimit)))
			}
			continue
		case doRecordPost:
			fresh := v.last.call == callPost
			if !fresh {
				ref = *j.posted
			}
			err = o.recordPost(k, r, ref, version, now)
			if err != nil {
				// Posting again would show approvers a second copy.
				j.posted = &ref
			} else {
				j.posted = nil
				if pr, ok := p.(PostRecorder); ok && fresh {
					pr.Recorded(ref)
				}
			}
		case doReply:
			err = o.replies(k, r, d, p)
			v.last = callAnswer{call: callReply, err: err}
			continue
		case doUpdate:
			ctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			err := p.Update(ctx, d.Ref, msg)
			e.metrics.delivery.WithLabelValues(d.Platform, "update", callResult(err)).Inc()
			v.last = callAnswer{call: callUpdate, err: err}
			if err != nil {
				if j.firstFailure.IsZero() {
					j.firstFailure = now
				}
				v.last.failingFor = now.Sub(j.firstFailure)
				if s := v.next(); s.do == doRetry {
					e.log.WarnContext(ctx, "update failed; will retry", "channel", d.Channel, "err", err)
				}
			}
			continue
		case doRecordShown:
			err = o.settle(k, r, shown(version))
		case doGiveUpUpdate:
			e.log.ErrorContext(ctx, "update failed; giving up", "platform", d.Platform, "channel", d.Channel, "err", v.last.err)
			err = o.settle(k, r, updateFailed(s.reason, now))
		}
		v.last = callAnswer{call: callStore, err: err}
	}
}

// The store transitions a job records: each a pure function of the
// request, its destination and the time.

// skipped marks a destination its request ended before it was posted.
func skipped(r *approvebot.Request, d *approvebot.Destination) store.Change {
	if d.State == approvebot.DeliveryQueued && r.Status.Final() {
		d.State = approvebot.DeliverySkipped
	}
	return store.Change{}
}

// posted records the message ref showing version.
func posted(ref approvebot.MessageRef, version uint64, now time.Time) func(*approvebot.Request, *approvebot.Destination) store.Change {
	return func(r *approvebot.Request, d *approvebot.Destination) store.Change {
		d.State, d.Ref, d.Shown, d.Error = approvebot.DeliveryPosted, ref, version, ""
		d.Replied = len(r.Thread) // a new message starts its own thread
		return store.Change{Events: []approvebot.Event{event(approvebot.EventPosted, r.ID, now, "", postedDetail{
			Platform: d.Platform, Channel: d.Channel, Ref: ref, Version: version,
		})}}
	}
}

// postedDetail is the detail of a message_posted event, its fields in the
// order of their names so that it encodes as the map of the same keys did
// (see requestedDetail).
type postedDetail struct {
	Channel  string                `json:"channel"`
	Platform string                `json:"platform"`
	Ref      approvebot.MessageRef `json:"ref"`
	Version  uint64                `json:"version"`
}

// shown records that the message shows version (or a later one already).
func shown(version uint64) func(*approvebot.Request, *approvebot.Destination) store.Change {
	return func(_ *approvebot.Request, d *approvebot.Destination) store.Change {
		if d.Shown < version {
			d.Shown = version
		}
		return store.Change{}
	}
}

// updateFailed stops updating a message that cannot be updated: the
// destination counts as showing the request, with the error beside it.
func updateFailed(reason string, now time.Time) func(*approvebot.Request, *approvebot.Destination) store.Change {
	return func(r *approvebot.Request, d *approvebot.Destination) store.Change {
		d.Shown, d.Error = r.Version, "update failed: "+reason
		return store.Change{Events: []approvebot.Event{event(approvebot.EventFailed, r.ID, now, "", map[string]any{
			"platform": d.Platform, "channel": d.Channel, "ref": d.Ref, "update": true, "reason": reason,
		})}}
	}
}

// recordPost records a message the platform accepted. If the store cannot
// record it now, the job keeps the reference and retries the record alone.
func (o *outbox) recordPost(k store.JobKey, like *approvebot.Request, ref approvebot.MessageRef, version uint64, now time.Time) error {
	return o.settle(k, like, posted(ref, version, now))
}

// settle records a job's result and drops it from the store's outbox (unless
// the request changed meanwhile, in which case the store keeps it owed and
// announces it again). like is the run's copy of the request (nil: none).
func (o *outbox) settle(k store.JobKey, like *approvebot.Request, fn func(r *approvebot.Request, d *approvebot.Destination) store.Change) error {
	wasFinal := false
	_, _, err := o.e.store.Deliver(k, like, func(r *approvebot.Request, d *approvebot.Destination) (store.Change, error) {
		wasFinal = r.Status.Final()
		if fn == nil {
			return store.Change{}, nil
		}
		return fn(r, d), nil
	}, func(r *approvebot.Request) {
		// A request this delivery ended (undeliverable) is released in
		// the commit's callback, as every transition of the engine's is.
		if !wasFinal && r.Status.Final() {
			o.e.finished(r)
		}
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		o.e.log.ErrorContext(WithRequestID(o.ctx, k.ID), "outbox: record delivery; will retry", "err", err)
		return err
	}
	return nil
}

// fail marks a destination failed. Other messages of the request then say so,
// and if no approver can see the current stage any more, the request ends as
// undeliverable at once: an agent is never left to wait out its timeout in
// silence.
func (o *outbox) fail(k store.JobKey, like *approvebot.Request, reason string, config bool) error {
	return o.settle(k, like, failed(reason, config, o.e.clock.Now()))
}

// failed marks a queued destination failed, and ends its request as
// undeliverable when no destination of the current stage is left.
func failed(reason string, config bool, now time.Time) func(*approvebot.Request, *approvebot.Destination) store.Change {
	return func(r *approvebot.Request, d *approvebot.Destination) store.Change {
		if d.State != approvebot.DeliveryQueued {
			return store.Change{}
		}
		d.State, d.Error = approvebot.DeliveryFailed, reason
		evs := []approvebot.Event{event(approvebot.EventFailed, r.ID, now, "", map[string]any{
			"platform": d.Platform, "channel": d.Channel, "reason": reason, "configuration": config,
		})}
		if !r.Status.Final() && !hasLive(r) {
			policy.Expire(r, approvebot.StatusUndeliverable, "could not be shown to any approver: "+failures(r), now)
			outcomeNote(r, now)
			evs = append(evs, resolvedEvent(r, now))
		}
		return store.Change{Visible: true, Events: evs}
	}
}

func (o *outbox) backoff(j *job, asked time.Duration) time.Duration {
	j.attempts++
	d := backoffBase << min(j.attempts-1, 10)
	d = min(d, backoffMax)
	d = d/2 + rand.N(d/2+1) // jitter, so retries from many jobs spread out
	if asked > d {
		d = min(asked, retryAfterLimit) + rand.N(asked/10+1)
	}
	return d
}

func callResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case approvebot.IsPermanent(err):
		return "failed"
	default:
		return "retry"
	}
}

func reasonOf(err error) string {
	var de *approvebot.DeliveryError
	if errors.As(err, &de) && de.Reason != "" {
		return de.Reason
	}
	return err.Error()
}

// failures lists the failed destinations of a request: "slack C0X:
// channel_not_found; teams 19:...: ...".
func failures(r *approvebot.Request) string {
	var parts []string
	for _, d := range r.Destinations {
		if d.State == approvebot.DeliveryFailed {
			parts = append(parts, d.Platform+" "+d.Channel+": "+d.Error)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
