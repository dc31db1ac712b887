package logwriter

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

// recorder is a destination that keeps what it is given and counts the
// calls; while gated, each call waits for the test to open the gate.
type recorder struct {
	gate chan struct{} // nil: never waits; closed: open
	fail error

	mu    sync.Mutex
	buf   bytes.Buffer
	calls int
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	if r.gate != nil {
		<-r.gate
	}
	if r.fail != nil {
		return 0, r.fail
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

func (r *recorder) written() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String(), r.calls
}

func line(g, i int) string {
	// Lengths vary, so a line cut or interleaved shows as a malformed one.
	return fmt.Sprintf(`{"g":%d,"i":%d,"pad":%q}`+"\n", g, i, strings.Repeat("x", (g*7+i)%40))
}

// TestConcurrentLinesWholeAndInOrder: every line of many goroutines
// arrives once, whole, and each goroutine's lines in the order it wrote
// them, with a bound small enough that Writes keep waiting for room.
func TestConcurrentLinesWholeAndInOrder(t *testing.T) {
	const goroutines, lines = 16, 500
	dst := &recorder{}
	w := New(dst, 512)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range lines {
				l := line(g, i)
				if n, err := w.Write([]byte(l)); err != nil || n != len(l) {
					t.Errorf("Write = %d, %v; want %d, nil", n, err, len(l))
					return
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, calls := dst.written()
	next := make([]int, goroutines)
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != goroutines*lines {
		t.Fatalf("%d lines written, want %d", len(got), goroutines*lines)
	}
	for _, l := range got {
		var g, i int
		if _, err := fmt.Sscanf(l, `{"g":%d,"i":%d,`, &g, &i); err != nil || g < 0 || g >= goroutines || l+"\n" != line(g, i) {
			t.Fatalf("line not whole: %q", l)
		}
		if i != next[g] {
			t.Fatalf("goroutine %d: line %d arrived where %d was due", g, i, next[g])
		}
		next[g]++
	}
	t.Logf("%d lines in %d writes", len(got), calls)
}

// TestLoneLineWrittenAtOnce: a line logged while nothing else is going on
// reaches the destination without waiting for another line or for Close.
func TestLoneLineWrittenAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dst := &recorder{}
		w := New(dst, 0)
		defer w.Close()
		for i := range 3 {
			w.Write([]byte(line(0, i)))
			synctest.Wait() // the writer's goroutine is idle again
			if out, calls := dst.written(); calls != i+1 || !strings.HasSuffix(out, line(0, i)) {
				t.Fatalf("after line %d: %d writes, %q", i, calls, out)
			}
		}
	})
}

// TestBackPressureAndCoalescing: while the destination is stuck, Writes
// are taken up to the bound and the next one waits; once it moves again,
// what piled up goes out in one call.
func TestBackPressureAndCoalescing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dst := &recorder{gate: make(chan struct{})}
		w := New(dst, 100)
		first := "line 0000\n"
		w.Write([]byte(first))
		synctest.Wait() // its write is under way, stuck in the destination

		var want strings.Builder
		want.WriteString(first)
		for i := 1; i <= 10; i++ {
			l := fmt.Sprintf("line %04d\n", i) // ten fill the bound
			want.WriteString(l)
			if _, err := w.Write([]byte(l)); err != nil {
				t.Fatal(err)
			}
		}
		var over atomic.Bool
		go func() {
			w.Write([]byte("over the bound\n"))
			over.Store(true)
		}()
		synctest.Wait()
		if over.Load() {
			t.Fatal("a Write past the bound returned while the destination was stuck")
		}
		if _, calls := dst.written(); calls != 1 {
			t.Fatalf("%d writes while stuck, want 1", calls)
		}

		close(dst.gate)
		synctest.Wait()
		if !over.Load() {
			t.Fatal("the Write past the bound still waits after the destination moved")
		}
		w.Close()
		want.WriteString("over the bound\n")
		out, calls := dst.written()
		if out != want.String() {
			t.Fatalf("written:\n%s\nwant:\n%s", out, want.String())
		}
		// The first line alone, the ten together, the last one.
		if calls != 3 {
			t.Fatalf("12 lines in %d writes, want 3", calls)
		}
	})
}

// TestCloseFlushes: Close returns once every accepted line is written,
// including a Write that was waiting for room when Close began; a Write
// after Close is refused and writes nothing.
func TestCloseFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dst := &recorder{gate: make(chan struct{})}
		w := New(dst, 30)
		var want strings.Builder
		for i := range 4 {
			l := fmt.Sprintf("line %03d\n", i) // three fill the bound
			want.WriteString(l)
			w.Write([]byte(l))
			if i == 0 {
				synctest.Wait() // its write is under way, stuck in the destination
			}
		}
		waiting := make(chan struct{})
		go func() {
			defer close(waiting)
			w.Write([]byte("waited for room\n"))
		}()
		synctest.Wait()
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			w.Close()
		}()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("Close returned with lines unwritten")
		default:
		}
		close(dst.gate)
		<-closed
		<-waiting
		want.WriteString("waited for room\n")
		if out, _ := dst.written(); out != want.String() {
			t.Fatalf("written:\n%s\nwant:\n%s", out, want.String())
		}

		if n, err := w.Write([]byte("too late\n")); n != 0 || !errors.Is(err, ErrClosed) {
			t.Fatalf("Write after Close = %d, %v; want 0, ErrClosed", n, err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if out, _ := dst.written(); strings.Contains(out, "too late") {
			t.Fatal("a line written after Close reached the destination")
		}
	})
}

// TestFailingDestination: a destination that refuses every write costs a
// call per batch and nothing more; Writes still succeed, as slog expects
// of its output, and Close returns.
func TestFailingDestination(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dst := &recorder{fail: errors.New("disk full")}
		w := New(dst, 0)
		if _, err := w.Write([]byte(line(2, 0))); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // returns only if the goroutine rests after the failure
		if _, calls := dst.written(); calls != 1 {
			t.Fatalf("%d writes for one line, want 1", calls)
		}
		w.Write([]byte(line(2, 1)))
		w.Close()
		if _, calls := dst.written(); calls != 2 {
			t.Fatalf("%d writes for two lines, want 2", calls)
		}
	})
}
