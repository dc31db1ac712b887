package bot

import (
	"slices"
	"sync"
	"time"

	"github.com/approvebot/approvebot/store"
)

// Paced is implemented by platforms that limit how often a new message may
// be posted to one destination (Slack: about one a second per channel). The
// engine's pacer keeps to it; adapters only say what the interval is. A
// platform that does not implement it is not paced.
type Paced interface {
	// PostInterval is the least time between the starts of two posts to
	// channel; zero or less means no pause.
	PostInterval(channel string) time.Duration
}

// pacer spaces the posts to each destination by its platform's interval,
// for every platform alike. A post whose destination is not free yet waits
// in that destination's queue, not in an outbox worker: a burst to one
// channel never holds up a post to another. Each queue has a next-allowed
// time; when it comes, the queue's head is handed its turn (ready) and goes
// back to the workers. A turn not used for a post (the request ended
// meanwhile, its record failed) is given back, so the next in line goes at
// once: no slot is ever lost, and a retry takes one turn, not one per try.
type pacer struct {
	clock Clock
	// ready is called, outside the lock, with a parked job and its turn.
	ready func(k store.JobKey, t *turn)
	// late is called, outside the lock, with parked jobs that can no
	// longer be posted before their deadline (the destination was pushed
	// back by the platform).
	late func(k store.JobKey)

	mu      sync.Mutex
	lanes   map[string]*lane
	stopped bool
}

// lane is one destination's queue.
type lane struct {
	key      string
	interval time.Duration
	next     time.Time // earliest start of the next post
	waiting  []parked
	timer    Timer
}

type parked struct {
	k        store.JobKey
	deadline time.Time
}

// turn is the right to start one post to a destination now.
type turn struct {
	lane     string
	at       time.Time // when it was granted
	prevNext time.Time // the lane's next-allowed time before the grant
}

// verdict is what take decided.
type verdict int

const (
	goNow   verdict = iota // the turn is granted: post now
	waitFor                // parked: ready will be called with the turn
	tooLate                // the destination's next free turn is past the deadline
)

func newPacer(clock Clock, ready func(store.JobKey, *turn), late func(store.JobKey)) *pacer {
	return &pacer{clock: clock, ready: ready, late: late, lanes: map[string]*lane{}}
}

// take asks for a turn to post job k to destination key. With an interval
// of zero or less the turn is always granted (and nil: nothing to give
// back). A job whose turn would come at or after its deadline is neither
// granted nor parked: at the platform's pace, approvers cannot see it in
// time, and saying so now beats letting the request time out in silence.
func (p *pacer) take(key string, interval time.Duration, k store.JobKey, deadline time.Time) (*turn, verdict) {
	if interval <= 0 {
		return nil, goNow
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	l := p.lanes[key]
	if l == nil {
		p.sweep(now)
		l = &lane{key: key}
		p.lanes[key] = l
	}
	l.interval = interval
	if len(l.waiting) == 0 && !now.Before(l.next) {
		t := &turn{lane: key, at: now, prevNext: l.next}
		l.next = now.Add(interval)
		return t, goNow
	}
	if slices.ContainsFunc(l.waiting, func(w parked) bool { return w.k == k }) {
		return nil, waitFor
	}
	if !l.slot(now, len(l.waiting)).Before(deadline) {
		return nil, tooLate
	}
	l.waiting = append(l.waiting, parked{k: k, deadline: deadline})
	p.arm(l, now)
	return nil, waitFor
}

// slot is when the job at position i of the queue gets its turn, if every
// job ahead of it uses its own.
func (l *lane) slot(now time.Time, i int) time.Time {
	start := l.next
	if start.Before(now) {
		start = now
	}
	return start.Add(time.Duration(i) * l.interval)
}

// giveBack returns an unused turn: the destination is free again as it was
// before the grant, and the next in line goes now.
func (p *pacer) giveBack(t *turn) {
	if t == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.lanes[t.lane]
	if l == nil || !l.next.Equal(t.at.Add(l.interval)) {
		return // a later grant or a push-back owns next now
	}
	l.next = t.prevNext
	p.rearm(l)
}

// holdUntil keeps a destination closed until at least until, as a platform's
// Retry-After asks. Parked jobs that can then no longer make their deadline
// are reported late.
func (p *pacer) holdUntil(key string, until time.Time) {
	var late []store.JobKey
	p.mu.Lock()
	l := p.lanes[key]
	if l != nil && l.next.Before(until) {
		l.next = until
		now := p.clock.Now()
		kept := l.waiting[:0]
		for _, w := range l.waiting {
			if l.slot(now, len(kept)).Before(w.deadline) {
				kept = append(kept, w)
			} else {
				late = append(late, w.k)
			}
		}
		clear(l.waiting[len(kept):])
		l.waiting = kept
		p.rearm(l)
	}
	p.mu.Unlock()
	for _, k := range late {
		p.late(k)
	}
}

// arm sets the lane's timer for its next-allowed time, if it has none.
func (p *pacer) arm(l *lane, now time.Time) {
	if l.timer != nil || len(l.waiting) == 0 || p.stopped {
		return
	}
	l.timer = p.clock.AfterFunc(max(l.next.Sub(now), 0), func() { p.fire(l.key) })
}

// rearm moves the lane's timer to its (changed) next-allowed time.
func (p *pacer) rearm(l *lane) {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	p.arm(l, p.clock.Now())
}

// fire hands the head of a lane its turn, and arms the timer for the next.
func (p *pacer) fire(key string) {
	p.mu.Lock()
	l := p.lanes[key]
	if l == nil || p.stopped {
		p.mu.Unlock()
		return
	}
	l.timer = nil
	now := p.clock.Now()
	if len(l.waiting) == 0 {
		p.mu.Unlock()
		return
	}
	if now.Before(l.next) { // moved later since the timer was set
		p.arm(l, now)
		p.mu.Unlock()
		return
	}
	head := l.waiting[0]
	l.waiting[0] = parked{}
	l.waiting = l.waiting[1:]
	// A timer that fires a little late does not push the whole queue
	// back: the pace counts from when the turn was due. A long stall
	// does, so that no burst follows it to catch up.
	at := now
	if now.Sub(l.next) < l.interval/10 {
		at = l.next
	}
	t := &turn{lane: key, at: at, prevNext: l.next}
	l.next = at.Add(l.interval)
	p.arm(l, now)
	p.mu.Unlock()
	p.ready(head.k, t)
}

// sweep forgets idle lanes now and then, so destinations seen once do not
// accumulate.
func (p *pacer) sweep(now time.Time) {
	if len(p.lanes) < 4096 {
		return
	}
	for key, l := range p.lanes {
		if len(l.waiting) == 0 && l.timer == nil && !now.Before(l.next) {
			delete(p.lanes, key)
		}
	}
}

// waiting counts the parked jobs.
func (p *pacer) parkedJobs() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lanes {
		n += len(l.waiting)
	}
	return n
}

// stop cancels every timer; parked jobs stay owed in the store.
func (p *pacer) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	for _, l := range p.lanes {
		if l.timer != nil {
			l.timer.Stop()
			l.timer = nil
		}
	}
}
