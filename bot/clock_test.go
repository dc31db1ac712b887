package bot

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

var clockStart = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// Timers run when the clock reaches them, in due order (ties in the order
// they were armed), each seeing its own time; stopped ones never run.
func TestManualClockRunsTimersInOrder(t *testing.T) {
	c := NewManualClock(clockStart)
	var ran []string
	at := map[string]time.Duration{}
	arm := func(name string, d time.Duration) Timer {
		return c.AfterFunc(d, func() {
			ran = append(ran, name)
			at[name] = c.Now().Sub(clockStart)
		})
	}
	arm("3s", 3*time.Second)
	arm("1s-a", time.Second)
	arm("1s-b", time.Second)
	stopped := arm("2s", 2*time.Second)
	arm("10s", 10*time.Second)
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer said it had run")
	}
	if stopped.Stop() {
		t.Fatal("a second Stop said the timer was still pending")
	}
	if n := c.Timers(); n != 4 {
		t.Fatalf("%d timers pending, want 4", n)
	}
	c.Advance(999 * time.Millisecond)
	if len(ran) != 0 {
		t.Fatalf("ran %v before any was due", ran)
	}
	c.Advance(4 * time.Second)
	if want := []string{"1s-a", "1s-b", "3s"}; !slices.Equal(ran, want) {
		t.Fatalf("ran %v, want %v", ran, want)
	}
	if at["1s-a"] != time.Second || at["3s"] != 3*time.Second {
		t.Fatalf("timers saw %v, want each its own time", at)
	}
	if got := c.Now().Sub(clockStart); got != 4999*time.Millisecond {
		t.Fatalf("clock at +%v after the moves, want +4.999s", got)
	}
	if n := c.Timers(); n != 1 {
		t.Fatalf("%d timers pending, want the 10 s one", n)
	}
}

// Jump runs the timers it passes late, all at the new time, as a machine
// that was busy runs them.
func TestManualClockJumpRunsLate(t *testing.T) {
	c := NewManualClock(clockStart)
	var seen []time.Duration
	for _, d := range []time.Duration{time.Second, 2 * time.Second} {
		c.AfterFunc(d, func() { seen = append(seen, c.Now().Sub(clockStart)) })
	}
	c.Jump(5 * time.Second)
	if want := []time.Duration{5 * time.Second, 5 * time.Second}; !slices.Equal(seen, want) {
		t.Fatalf("timers saw %v, want both at +5s", seen)
	}
}

// A timer armed for now or the past runs at once, without a move, as on
// the wall clock; Stop then reports it gone.
func TestManualClockDueTimerRunsAtOnce(t *testing.T) {
	c := NewManualClock(clockStart)
	done := make(chan struct{})
	tm := c.AfterFunc(-time.Second, func() { close(done) })
	<-done
	if tm.Stop() {
		t.Fatal("Stop of a timer that ran said it was pending")
	}
	if n := c.Timers(); n != 0 {
		t.Fatalf("%d timers pending, want 0", n)
	}
}

// A timer may arm the next one; a move runs it too when it comes due
// within the move.
func TestManualClockTimerArmsTimer(t *testing.T) {
	c := NewManualClock(clockStart)
	n := 0
	var tick func()
	tick = func() {
		n++
		c.AfterFunc(time.Second, tick)
	}
	c.AfterFunc(time.Second, tick)
	c.Advance(3 * time.Second)
	if n != 3 {
		t.Fatalf("%d ticks in 3 s, want 3", n)
	}
}

// WaitTimers returns once enough timers are armed, from any goroutine, and
// says how many there were when its context ends first.
func TestManualClockWaitTimers(t *testing.T) {
	c := NewManualClock(clockStart)
	go func() {
		c.AfterFunc(time.Minute, func() {})
		c.AfterFunc(time.Minute, func() {})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitTimers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithCancel(context.Background())
	cancelShort()
	if err := c.WaitTimers(short, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitTimers for a timer never armed: %v, want the context's error", err)
	}
}

// withTimeout ends its context when the clock reaches the timeout, not
// before, and its cancel disarms the timer.
func TestWithTimeoutOnTheClock(t *testing.T) {
	c := NewManualClock(clockStart)
	ctx, cancel := withTimeout(context.Background(), c, time.Second)
	defer cancel()
	c.Advance(999 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatalf("context ended before its timeout: %v", ctx.Err())
	}
	c.Advance(time.Millisecond)
	if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		t.Fatalf("context at its timeout: %v, want the deadline exceeded", context.Cause(ctx))
	}

	ctx2, cancel2 := withTimeout(context.Background(), c, time.Second)
	cancel2()
	if n := c.Timers(); n != 0 {
		t.Fatalf("%d timers pending after cancel, want 0", n)
	}
	if !errors.Is(context.Cause(ctx2), context.Canceled) {
		t.Fatalf("cancelled context: %v, want cancelled", context.Cause(ctx2))
	}
}
