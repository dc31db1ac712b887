package bot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CallbackGuard bounds what the platforms' callbacks (/slack/interactions,
// /teams/messages) may cost before they are verified: anyone can send
// them, and a Slack signature covers the whole body, so the body must be
// read before it can be trusted. Each body gets a read deadline, set
// before its first byte is read, and a size limit; and all the bodies being
// read at once share one memory budget. When the budget runs short, the
// body that has been arriving longest gives its share up (its connection
// is closed): a genuine click arrives in one go, so slow or large
// unverified bodies cannot take the memory genuine clicks need.
type CallbackGuard struct {
	timeout time.Duration
	log     *slog.Logger

	mu     sync.Mutex
	left   int64
	active map[*budgetedBody]struct{}

	refused prometheus.Counter
}

// NewCallbackGuard gives each callback body timeout to arrive and all of
// them memory bytes together.
func NewCallbackGuard(timeout time.Duration, memory int64, log *slog.Logger) *CallbackGuard {
	return &CallbackGuard{timeout: timeout, left: memory, log: log, active: map[*budgetedBody]struct{}{},
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "approvebot_callbacks_refused_total",
			Help: "Platform callbacks refused before verification: too large, too slow, or over server.callback_memory.",
		})}
}

// Collectors are the guard's series, for the metrics registry.
func (g *CallbackGuard) Collectors() []prometheus.Collector {
	return []prometheus.Collector{g.refused}
}

var errCallbackMemory = errors.New("server.callback_memory is in use by other callbacks")

// Wrap guards h, whose bodies may be at most limit bytes.
func (g *CallbackGuard) Wrap(h http.Handler, limit int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Socket deadlines and the arrival order below are the network's
		// business: they stay on the wall clock, like net/http's own.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(g.timeout))
		if r.ContentLength > limit {
			g.refuse(w, r, http.StatusRequestEntityTooLarge, "body larger than the endpoint's limit", "content_length", r.ContentLength, "limit", limit)
			return
		}
		// Until its body has arrived, a callback may be anyone's.
		Unverified(r.Context())
		b := &budgetedBody{ReadCloser: r.Body, g: g, ctx: r.Context(), started: time.Now(), cut: connCloser(r.Context())}
		g.mu.Lock()
		g.active[b] = struct{}{}
		g.mu.Unlock()
		defer b.giveBack()
		r.Body = http.MaxBytesReader(w, b, limit)
		h.ServeHTTP(w, r)
		g.mu.Lock()
		over, evicted := b.over, b.evicted
		g.mu.Unlock()
		// The handler has answered (it could not read the body); the
		// reason is the guard's, and the server logs it once.
		switch {
		case evicted:
			g.refused.Inc()
			NoteRefusal(w, "callback_memory_cut", "cut off: its body was arriving for longest when server.callback_memory ran short")
		case over:
			g.refused.Inc()
			NoteRefusal(w, "callback_memory_full", "bodies being read fill server.callback_memory")
		case isTimeout(b.err):
			g.refused.Inc()
			NoteRefusal(w, "callback_timeout", "its body did not arrive within server.callback_read_timeout ("+g.timeout.String()+")")
		}
	})
}

func (g *CallbackGuard) refuse(w http.ResponseWriter, r *http.Request, status int, why string, args ...any) {
	g.refused.Inc()
	NoteRefusal(w, "callback_"+strings.ReplaceAll(http.StatusText(status), " ", "_"), fmt.Sprint(append([]any{why}, args...)...))
	w.Header().Set("Connection", "close")
	w.WriteHeader(status)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// budgetedBody counts the bytes read against the guard's budget until the
// handler is done with them.
type budgetedBody struct {
	io.ReadCloser
	g       *CallbackGuard
	ctx     context.Context
	started time.Time
	cut     func() // closes the connection

	// Guarded by g.mu.
	taken   int64
	over    bool // refused: no room, nobody older to take it from
	evicted bool // gave its share up to a newer body

	err error
}

func (b *budgetedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && !b.g.take(b, int64(n)) {
		return 0, errCallbackMemory
	}
	if err == io.EOF {
		Serving(b.ctx)
	} else if err != nil {
		b.err = err
	}
	return n, err
}

// take counts n more bytes for b, taking the share of the bodies that have
// been arriving longer than b, oldest first, when the budget is short.
func (g *CallbackGuard) take(b *budgetedBody, n int64) bool {
	var victims []*budgetedBody
	g.mu.Lock()
	for g.left < n {
		var v *budgetedBody
		for o := range g.active {
			if o != b && o.started.Before(b.started) && (v == nil || o.started.Before(v.started)) {
				v = o
			}
		}
		if v == nil {
			break
		}
		delete(g.active, v)
		g.left += v.taken
		v.taken, v.evicted = 0, true
		victims = append(victims, v)
	}
	ok := g.left >= n
	if ok {
		g.left -= n
		b.taken += n
	} else {
		b.over = true
	}
	g.mu.Unlock()
	for _, v := range victims {
		v.cut()
	}
	return ok
}

func (b *budgetedBody) giveBack() {
	b.g.mu.Lock()
	delete(b.g.active, b)
	b.g.left += b.taken
	b.taken = 0
	b.g.mu.Unlock()
}
