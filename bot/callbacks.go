package bot

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CallbackGuard bounds what the platforms' callbacks (/slack/interactions,
// /teams/messages) may cost before they are verified: anyone can send
// them, and a Slack signature covers the whole body, so the body must be
// read before it can be trusted. Each body gets a read deadline, set
// before its first byte is read, and a size limit; and all the bodies being
// read at once share one memory budget, so slow or large unverified bodies
// cannot take the memory agents and genuine clicks need.
type CallbackGuard struct {
	timeout time.Duration
	log     *slog.Logger

	mu   sync.Mutex
	left int64

	refused prometheus.Counter
}

// NewCallbackGuard gives each callback body timeout to arrive and all of
// them memory bytes together.
func NewCallbackGuard(timeout time.Duration, memory int64, log *slog.Logger) *CallbackGuard {
	return &CallbackGuard{timeout: timeout, left: memory, log: log,
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
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(g.timeout))
		if r.ContentLength > limit {
			g.refuse(w, r, http.StatusRequestEntityTooLarge, "body larger than the endpoint's limit", "content_length", r.ContentLength, "limit", limit)
			return
		}
		g.mu.Lock()
		full := g.left <= 0
		g.mu.Unlock()
		if full {
			w.Header().Set("Retry-After", "1")
			g.refuse(w, r, http.StatusServiceUnavailable, "callback bodies being read fill server.callback_memory")
			return
		}
		// Until its body has arrived, a callback may be anyone's.
		Unverified(r.Context())
		b := &budgetedBody{ReadCloser: r.Body, g: g, ctx: r.Context()}
		defer b.giveBack()
		r.Body = http.MaxBytesReader(w, b, limit)
		h.ServeHTTP(w, r)
		switch {
		case b.over:
			g.refused.Inc()
			g.log.Warn("callback refused: bodies being read fill server.callback_memory", "path", r.URL.Path, "remote", r.RemoteAddr)
		case isTimeout(b.err):
			g.refused.Inc()
			g.log.Warn("callback refused: its body did not arrive within server.callback_read_timeout", "path", r.URL.Path, "remote", r.RemoteAddr, "timeout", g.timeout)
		}
	})
}

func (g *CallbackGuard) refuse(w http.ResponseWriter, r *http.Request, status int, why string, args ...any) {
	g.refused.Inc()
	g.log.Warn("callback refused: "+why, append([]any{"path", r.URL.Path, "remote", r.RemoteAddr}, args...)...)
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
	g     *CallbackGuard
	ctx   context.Context
	taken int64
	over  bool
	err   error
}

func (b *budgetedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.g.mu.Lock()
		ok := b.g.left >= int64(n)
		if ok {
			b.g.left -= int64(n)
			b.taken += int64(n)
		}
		b.g.mu.Unlock()
		if !ok {
			b.over = true
			return 0, errCallbackMemory
		}
	}
	if err == io.EOF {
		Serving(b.ctx)
	} else if err != nil {
		b.err = err
	}
	return n, err
}

func (b *budgetedBody) giveBack() {
	b.g.mu.Lock()
	b.g.left += b.taken
	b.taken = 0
	b.g.mu.Unlock()
}
