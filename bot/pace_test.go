package bot

import (
	"testing"
	"time"

	"github.com/approvebot/approvebot/store"
)

type grant struct {
	k store.JobKey
	t *turn
}

type paceEnv struct {
	clock *ManualClock
	p     *pacer
	ready chan grant
	late  chan store.JobKey
}

func newPaceEnv() *paceEnv {
	e := &paceEnv{clock: NewManualClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)),
		ready: make(chan grant, 100), late: make(chan store.JobKey, 100)}
	e.p = newPacer(e.clock, func(k store.JobKey, t *turn) { e.ready <- grant{k, t} }, func(k store.JobKey) { e.late <- k })
	return e
}

func jobKey(i int) store.JobKey { return store.JobKey{ID: "r" + string(rune('a'+i)), Dest: 0} }

// next waits for the next turn handed out; timers of a moved clock run in
// the mover's goroutine, but a turn due at once runs in its own.
func (e *paceEnv) next(t *testing.T) grant {
	t.Helper()
	select {
	case g := <-e.ready:
		return g
	case <-time.After(10 * time.Second):
		t.Fatal("no turn handed out")
		return grant{}
	}
}

func (e *paceEnv) none(t *testing.T) {
	t.Helper()
	select {
	case g := <-e.ready:
		t.Fatalf("%s got a turn at %v, want none yet", g.k.ID, g.t.at)
	default:
	}
}

const lane1 = "slack\x00C1"

func TestPacerSpacesPostsToOneDestination(t *testing.T) {
	e := newPaceEnv()
	far := e.clock.Now().Add(time.Hour)
	start := e.clock.Now()
	if _, v := e.p.take(lane1, time.Second, jobKey(0), far); v != goNow {
		t.Fatalf("first post: %v, want goNow", v)
	}
	for i := 1; i < 4; i++ {
		if _, v := e.p.take(lane1, time.Second, jobKey(i), far); v != waitFor {
			t.Fatalf("post %d: %v, want waitFor", i, v)
		}
	}
	// Another destination is not behind the first one's queue.
	if _, v := e.p.take("slack\x00C2", time.Second, jobKey(9), far); v != goNow {
		t.Fatalf("post to an idle destination: %v, want goNow", v)
	}
	for i := 1; i < 4; i++ {
		e.clock.Advance(999 * time.Millisecond)
		e.none(t)
		e.clock.Advance(time.Millisecond)
		g := e.next(t)
		if g.k != jobKey(i) || !g.t.at.Equal(start.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("turn %d went to %s at %v, want %s at +%ds", i, g.k.ID, g.t.at.Sub(start), jobKey(i).ID, i)
		}
	}
	if n := e.p.parkedJobs(); n != 0 {
		t.Fatalf("%d jobs still parked", n)
	}
}

// A turn not spent on a post goes to the next in line at once: nothing leaks,
// however many turns go unused.
func TestPacerGivenBackTurnGoesToTheNext(t *testing.T) {
	e := newPaceEnv()
	far := e.clock.Now().Add(time.Hour)
	first, _ := e.p.take(lane1, time.Second, jobKey(0), far)
	for i := 1; i <= 40; i++ {
		e.p.take(lane1, time.Second, jobKey(i), far)
	}
	e.p.giveBack(first)
	for i := 1; i <= 40; i++ {
		g := e.next(t) // each given back at once, without moving the clock
		if g.k != jobKey(i) {
			t.Fatalf("turn went to %s, want %s", g.k.ID, jobKey(i).ID)
		}
		e.p.giveBack(g.t)
	}
	// Nobody waits and nothing was spent: the destination is free now.
	if _, v := e.p.take(lane1, time.Second, jobKey(50), far); v != goNow {
		t.Fatalf("after 41 unused turns the destination is not free: %v", v)
	}
}

func TestPacerSaysAtOnceWhenTheDeadlineCannotBeMet(t *testing.T) {
	e := newPaceEnv()
	deadline := e.clock.Now().Add(2500 * time.Millisecond)
	e.p.take(lane1, time.Second, jobKey(0), deadline)
	for i := 1; i <= 2; i++ { // turns at +1s and +2s
		if _, v := e.p.take(lane1, time.Second, jobKey(i), deadline); v != waitFor {
			t.Fatalf("post %d: %v, want waitFor", i, v)
		}
	}
	if _, v := e.p.take(lane1, time.Second, jobKey(3), deadline); v != tooLate {
		t.Fatalf("post whose turn is at +3s, deadline +2.5s: %v, want tooLate", v)
	}
	// The platform pushes the destination back: those parked that can no
	// longer make it are reported, the others keep their place.
	e.p.holdUntil(lane1, e.clock.Now().Add(2*time.Second))
	select {
	case k := <-e.late:
		if k != jobKey(2) {
			t.Fatalf("late: %s, want %s", k.ID, jobKey(2).ID)
		}
	default:
		t.Fatal("no job reported late after the push-back")
	}
	e.clock.Advance(2 * time.Second)
	if g := e.next(t); g.k != jobKey(1) {
		t.Fatalf("turn went to %s, want %s", g.k.ID, jobKey(1).ID)
	}
}

func TestPacerUnpacedAndStopped(t *testing.T) {
	e := newPaceEnv()
	far := e.clock.Now().Add(time.Hour)
	for i := range 3 {
		if tr, v := e.p.take(lane1, 0, jobKey(i), far); v != goNow || tr != nil {
			t.Fatalf("unpaced post: %v %v, want goNow and no turn", v, tr)
		}
	}
	e.p.take("teams\x00T", time.Second, jobKey(0), far)
	e.p.take("teams\x00T", time.Second, jobKey(1), far)
	e.p.stop()
	if n := e.clock.Timers(); n != 0 {
		t.Fatalf("%d timers left after stop", n)
	}
	e.clock.Advance(time.Hour)
	e.none(t)
}

// A turn handed out a little late keeps the schedule; after a long stall
// the schedule starts again from then, with no burst to catch up.
func TestPacerLateTimerKeepsThePace(t *testing.T) {
	e := newPaceEnv()
	far := e.clock.Now().Add(time.Hour)
	start := e.clock.Now()
	e.p.take(lane1, time.Second, jobKey(0), far)
	for i := 1; i <= 3; i++ {
		e.p.take(lane1, time.Second, jobKey(i), far)
	}
	e.clock.Jump(1050 * time.Millisecond) // due at +1s, handed out at +1.05s
	if g := e.next(t); !g.t.at.Equal(start.Add(time.Second)) {
		t.Fatalf("late turn counted from +%v, want +1s", g.t.at.Sub(start))
	}
	e.clock.Set(start.Add(1999 * time.Millisecond))
	e.none(t)
	e.clock.Set(start.Add(2 * time.Second))
	e.next(t)
	e.clock.Jump(3 * time.Second) // a stall: due at +3s, handed out at +5s
	if g := e.next(t); !g.t.at.Equal(start.Add(5 * time.Second)) {
		t.Fatalf("turn after a stall counted from +%v, want +5s", g.t.at.Sub(start))
	}
	if _, v := e.p.take(lane1, time.Second, jobKey(9), far); v != waitFor {
		t.Fatalf("right after the stalled turn: %v, want waitFor (no catch-up burst)", v)
	}
}
