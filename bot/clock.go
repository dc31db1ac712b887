package bot

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Clock is the engine's source of time, injected so deadlines can be tested
// without sleeping.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a scheduled call that can be cancelled.
type Timer interface {
	Stop() bool
}

// withTimeout is context.WithTimeout on clock c: the context ends when c
// reaches now+d, so a test moving a ManualClock ends it without sleeping.
func withTimeout(parent context.Context, c Clock, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	t := c.AfterFunc(d, func() { cancel(context.DeadlineExceeded) })
	return ctx, func() {
		t.Stop()
		cancel(context.Canceled)
	}
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns the current time.
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc calls f in its own goroutine after d.
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// ManualClock is a Clock that moves only when told to (Advance, Set), for
// tests of deadlines, retries and pacing that must not sleep. Timers due
// at the new time run, in due order, in the goroutine that moved it.
type ManualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
	seq    int
	armed  chan struct{} // closed when a timer is armed (WaitTimers)
}

type manualTimer struct {
	c       *ManualClock
	at      time.Time
	seq     int
	f       func()
	stopped bool
}

// NewManualClock starts at t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{now: t} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc calls f when the clock reaches now+d (at once, on the next
// move, when d <= 0).
func (c *ManualClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &manualTimer{c: c, at: c.now.Add(d), seq: c.seq, f: f}
	if d <= 0 {
		// Due now: run it as the wall clock would, without waiting for a move.
		go f()
		t.stopped = true
		return t
	}
	c.timers = append(c.timers, t)
	if c.armed != nil {
		close(c.armed)
		c.armed = nil
	}
	return t
}

// Stop cancels the timer; it reports whether it had not yet run.
func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves the clock forward by d, running the timers that come due.
func (c *ManualClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Jump moves the clock forward by d at once, then runs the timers that came
// due, all at the new time: late, as a busy machine runs them.
func (c *ManualClock) Jump(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	t := c.now
	c.mu.Unlock()
	c.Set(t)
}

// Set moves the clock to t (never backwards), running the timers that
// come due, each at its own time.
func (c *ManualClock) Set(t time.Time) {
	for {
		c.mu.Lock()
		var next *manualTimer
		kept := c.timers[:0]
		for _, x := range c.timers {
			if x.stopped {
				continue
			}
			kept = append(kept, x)
			if !x.at.After(t) && (next == nil || x.at.Before(next.at) || (x.at.Equal(next.at) && x.seq < next.seq)) {
				next = x
			}
		}
		clear(c.timers[len(kept):])
		c.timers = kept
		if next == nil {
			if t.After(c.now) {
				c.now = t
			}
			c.mu.Unlock()
			return
		}
		next.stopped = true
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
	}
}

// Timers counts the timers not yet run or stopped.
func (c *ManualClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending()
}

// WaitTimers waits until at least n timers are pending, so that a test
// moves the clock only once the code under test has armed what it must
// (a retry armed after a failure, say), without sleeping.
func (c *ManualClock) WaitTimers(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		if c.pending() >= n {
			c.mu.Unlock()
			return nil
		}
		if c.armed == nil {
			c.armed = make(chan struct{})
		}
		armed := c.armed
		c.mu.Unlock()
		select {
		case <-armed:
		case <-ctx.Done():
			return fmt.Errorf("%d timers pending, waiting for %d: %w", c.Timers(), n, ctx.Err())
		}
	}
}

// pending counts the timers not yet run or stopped; c.mu is held.
func (c *ManualClock) pending() int {
	n := 0
	for _, x := range c.timers {
		if !x.stopped {
			n++
		}
	}
	return n
}
