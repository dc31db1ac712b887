// Package logwriter owns the service's log stream on its way to the file
// descriptor: it writes each line whole and in order, and lines that come
// faster than the destination takes them share one write call.
package logwriter

import (
	"errors"
	"io"
	"sync"
)

// ErrClosed is what Write returns once Close has begun: the line is not
// written.
var ErrClosed = errors.New("log writer closed")

// DefaultPending bounds what waits for the destination: beyond it a Write
// blocks until the background write in progress ends. A mebibyte is a few
// thousand lines, far more than a healthy destination ever lets pile up.
const DefaultPending = 1 << 20

// Writer hands every Write to one background goroutine, which writes all
// that is pending in one call to the destination; Write copies the line and
// returns without waiting for that call. A line on its own is
// written at once: the goroutine holds nothing while it is idle, and no
// timer waits for company. Under load, lines logged during one write go out
// together in the next, so many lines cost one system call.
//
// Each Write is kept whole, never split or interleaved with another, and
// Writes reach the destination in the order they were accepted; slog's
// handlers call Write once per record, so each line stays one line.
//
// A line is in memory between its Write and the write to the destination:
// if the process is killed (SIGKILL, an OOM kill) in that moment, lines
// accepted less than a write's time earlier are lost. That is why nothing
// is ever held back to wait for more. A panic's report is written by the
// runtime straight to the file descriptor and does not pass here; the
// deferred Close of a panicking goroutine still flushes what was accepted.
//
// Errors of the destination are dropped, as slog drops a handler's write
// errors: the lines of a failed write are not retried, so a broken
// destination costs one failed call per batch and nothing spins.
type Writer struct {
	dst   io.Writer
	limit int

	mu      sync.Mutex
	work    sync.Cond // the goroutine waits here for lines or Close
	room    sync.Cond // Writes wait here for the pending bytes to be taken
	pending []byte
	spare   []byte // the buffer last written, reused for the next batch
	waiting int    // Writes blocked for room, which Close still lets in
	closed  bool
	done    chan struct{}
}

// New starts the writer's goroutine; Close stops it. limit bounds the bytes
// pending beyond the write in progress (DefaultPending when not positive),
// so the writer holds at most two buffers of limit bytes; a single line
// longer than limit is still taken, alone.
func New(dst io.Writer, limit int) *Writer {
	if limit <= 0 {
		limit = DefaultPending
	}
	w := &Writer{dst: dst, limit: limit, done: make(chan struct{})}
	w.work.L = &w.mu
	w.room.L = &w.mu
	go w.run()
	return w
}

// Write queues a copy of p to be written after every Write accepted before
// it. It blocks while the pending bytes are at the bound, and returns
// ErrClosed, writing nothing, when called after Close has begun.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrClosed
	}
	if len(w.pending) > 0 && len(w.pending)+len(p) > w.limit {
		// A Write that had begun before Close is still let in once there
		// is room: Close writes it.
		w.waiting++
		for len(w.pending) > 0 && len(w.pending)+len(p) > w.limit {
			w.room.Wait()
		}
		w.waiting--
	}
	if len(w.pending) == 0 {
		w.work.Signal()
	}
	w.pending = append(w.pending, p...)
	return len(p), nil
}

// Close writes every line accepted before it (and those of Writes blocked
// for room when it began), then stops the goroutine; it returns once they
// have been handed to the destination. Later Writes return ErrClosed.
// Close is safe to call more than once.
func (w *Writer) Close() error {
	w.mu.Lock()
	w.closed = true
	w.work.Signal()
	w.mu.Unlock()
	<-w.done
	return nil
}

func (w *Writer) run() {
	defer close(w.done)
	w.mu.Lock()
	for {
		for len(w.pending) == 0 && !(w.closed && w.waiting == 0) {
			w.work.Wait()
		}
		if len(w.pending) == 0 {
			w.mu.Unlock()
			return
		}
		batch := w.pending
		w.pending, w.spare = w.spare[:0], nil
		w.room.Broadcast()
		w.mu.Unlock()

		// The error is dropped, as slog drops it.
		_, _ = w.dst.Write(batch)

		w.mu.Lock()
		w.spare = batch
	}
}
