package bot

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot/jsonhttp"
	"github.com/approvebot/approvebot/intake"
	"github.com/approvebot/approvebot/signing"
	"github.com/approvebot/approvebot/store"
)

// Limits of the agent API.
const (
	maxRequestBody = 64 << 10
	maxPollWait    = 300 * time.Second
	// holdSlack is how long past its deadline a held request waits for the
	// expiry to land before answering on its own.
	holdSlack = 10 * time.Second
)

// ServerConfig wires the HTTP API.
type ServerConfig struct {
	Engine *Engine
	Signer *signing.Signer
	// Handlers are mounted as given, e.g. "POST /slack/interactions".
	Handlers map[string]http.Handler
	// Ready reports whether the chat platforms are reachable.
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
}

// Server is the HTTP API: agents' requests, platform callbacks, health.
type Server struct {
	cfg      ServerConfig
	engine   *Engine
	log      *slog.Logger
	mux      *http.ServeMux
	draining chan struct{}
	drainCtx context.Context // done once draining is closed
	drained  context.CancelFunc
	drainMu  sync.Once

	closed atomic.Bool // StopIntake was called

	hangups hangups // held agents that close their connection

	families map[string]string // endpoint families of refusals (endpointFamilies)

	heldMu      sync.Mutex
	held        int           // callers waiting in hold or a long poll
	heldChanged chan struct{} // closed and replaced whenever held changes
}

// NewServer builds the API on a private mux. A handler whose pattern is
// one of the API's own, or conflicts with another's, is an error.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, engine: cfg.Engine, log: slog.New(LogRequests(cfg.Logger.Handler())), mux: http.NewServeMux(), draining: make(chan struct{}), heldChanged: make(chan struct{})}
	s.drainCtx, s.drained = context.WithCancel(context.Background())
	s.families = endpointFamilies(cfg.Handlers)
	s.mux.HandleFunc("POST /v1/approvals", s.handleSubmit)
	s.mux.HandleFunc("GET /v1/approvals/{id}", s.handleGet)
	s.mux.HandleFunc("DELETE /v1/approvals/{id}", s.handleCancel)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)
	s.mux.Handle("GET /metrics", cfg.Engine.MetricsHandler())
	for pattern, h := range cfg.Handlers {
		if err := handle(s.mux, pattern, h); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &refusalRecorder{ResponseWriter: w}
	w = rec
	defer s.reportRefusal(rec, r)
	// A panic must reach the caller as a refusal, not as a dropped
	// connection an agent could mistake for anything.
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			writeError(w, approvebot.Errorf(approvebot.EUnavailable, "approvebot failed while answering; nothing was approved"))
		}
	}()
	Serving(r.Context())
	s.mux.ServeHTTP(w, r)
}

// Drain makes held requests answer now: the request stays pending in the
// store, and the answer tells the agent it was not decided. Used at the end
// of the shutdown grace period.
func (s *Server) Drain() {
	s.drainMu.Do(func() {
		close(s.draining)
		s.drained()
	})
}

// Close releases what the server keeps beside net/http (the watch on held
// agents' connections), once no agent is held any more.
func (s *Server) Close() { s.hangups.close() }

// StopIntake refuses new approval requests (503) and makes /readyz fail, as
// the first step of a shutdown. Everything else keeps working, clicks
// above all, so requests already held can still be decided during the
// grace period.
func (s *Server) StopIntake() { s.closed.Store(true) }

// WaitHeld blocks until no caller is held waiting for a decision, or ctx
// ends.
func (s *Server) WaitHeld(ctx context.Context) {
	for {
		s.heldMu.Lock()
		n, ch := s.held, s.heldChanged
		s.heldMu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Server) holding(delta int) {
	s.heldMu.Lock()
	s.held += delta
	close(s.heldChanged)
	s.heldChanged = make(chan struct{})
	s.heldMu.Unlock()
}

// authenticate is caller, answering 401 when there is none.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	caller, ok := s.caller(r)
	if !ok {
		writeError(w, approvebot.Errorf(approvebot.EUnauthorized, "missing or unknown bearer token"))
	}
	return caller, ok
}

// caller finds the caller whose token the request carries. Every configured
// token is compared, in constant time, whatever matches.
func (s *Server) caller(r *http.Request) (string, bool) {
	// RFC 7235: the scheme is case-insensitive ("bearer x" is "Bearer x").
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimLeft(token, " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(token))
	// The engine's policy, so that a reload changes who may call and where
	// their requests go in one step.
	callers := s.engine.Policy().Callers
	found := -1
	for i, c := range callers {
		if subtle.ConstantTimeCompare(sum[:], c.TokenSHA256[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return callers[found].Name, true
}

func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if s.closed.Load() {
		w.Header().Set("Retry-After", "5")
		writeError(w, approvebot.Errorf(approvebot.EUnavailable,
			"approvebot is restarting and takes no new requests; nothing was approved; retry in a few seconds (a retry with the same approval_request_id or Idempotency-Key reattaches to its request)"))
		return
	}
	if err := s.engine.callers.allow(caller); err != nil {
		s.engine.metrics.limited.WithLabelValues(LimitRate).Inc()
		writeError(w, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, approvebot.Errorf(approvebot.ETooLarge, "request body exceeds %d bytes", maxRequestBody))
			return
		}
		writeError(w, approvebot.Errorf(approvebot.EInvalid, "could not read the request body"))
		return
	}
	sub, err := intake.Parse(body)
	if err != nil {
		writeError(w, err)
		return
	}
	prefs := parsePrefer(r.Header.Values("Prefer"))
	opts := SubmitOptions{Caller: caller, Wait: prefs.wait}
	if k := r.Header.Get("Idempotency-Key"); k != "" {
		if len(k) > 255 || strings.ContainsFunc(k, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
			writeError(w, &approvebot.Error{Code: approvebot.EInvalid, Field: "Idempotency-Key",
				Message: "Idempotency-Key: want 1 to 255 visible ASCII characters"})
			return
		}
		opts.IdempotencyKey = k
	}
	req, err := s.engine.Submit(r.Context(), sub, opts)
	if err != nil {
		writeError(w, err)
		return
	}
	if prefs.async && !req.Status.Final() {
		w.Header().Set("Location", approvalPath(req))
		w.Header().Set("Preference-Applied", "respond-async")
		writeJSON(w, http.StatusAccepted, s.answer(req, caller))
		return
	}
	s.hold(w, r, req, caller)
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	req, err := s.engine.Lookup(caller, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.ErrorContext(WithRequestID(r.Context(), id), "get request", "err", err)
			writeError(w, approvebot.Errorf(approvebot.EUnavailable, "storage unavailable"))
			return
		}
		// Another caller's request is as unknown as a missing one.
		writeError(w, approvebot.Errorf(approvebot.ENotFound, "no approval request %q", id))
		return
	}
	if ws := r.URL.Query().Get("wait"); ws != "" && !req.Status.Final() {
		n, err := strconv.Atoi(ws)
		if err != nil || n < 0 {
			writeError(w, &approvebot.Error{Code: approvebot.EInvalid, Field: "wait", Message: "wait: want a whole number of seconds"})
			return
		}
		// Clamped before it becomes a Duration, which a huge n would wrap.
		wait := time.Duration(min(n, int(maxPollWait/time.Second))) * time.Second
		ctx, cancel := withTimeout(r.Context(), s.engine.clock, wait)
		defer cancel()
		if got, err := s.waitOrDrain(ctx, cancel, req.ID); got != nil {
			req = got
		} else if err != nil && r.Context().Err() != nil {
			return
		}
	}
	writeJSON(w, http.StatusOK, s.answer(req, caller))
}

// handleCancel withdraws the caller's pending request. The answer is the
// request as it now stands: 200 when it is withdrawn (again, for a repeated
// DELETE), 409 when it ended otherwise first, 404 for another caller's.
func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	req, err := s.engine.Cancel(caller, id)
	switch {
	case errors.Is(err, ErrFinal):
		writeJSON(w, http.StatusConflict, s.answer(req, caller))
	case errors.Is(err, store.ErrNotFound):
		writeError(w, approvebot.Errorf(approvebot.ENotFound, "no approval request %q", id))
	case err != nil:
		s.log.ErrorContext(WithRequestID(r.Context(), id), "cancel request", "err", err)
		writeError(w, approvebot.Errorf(approvebot.EUnavailable, "storage unavailable; the request was not withdrawn"))
	default:
		s.log.InfoContext(WithRequestID(r.Context(), req.ID), "request withdrawn by its caller", "caller", caller)
		writeJSON(w, http.StatusOK, s.answer(req, caller))
	}
}

// hold keeps the agent's connection open until the request is final. If the
// agent goes away, the request stays pending: a retry attaches to it.
func (s *Server) hold(w http.ResponseWriter, r *http.Request, req *approvebot.Request, caller string) {
	if !req.Status.Final() && s.holdDetached(w, r, req, caller) {
		return
	}
	if !req.Status.Final() {
		s.engine.metrics.heldConns.Inc()
		defer s.engine.metrics.heldConns.Dec()
		ctx, cancel := withTimeout(WithRequestID(r.Context(), req.ID), s.engine.clock, req.Deadline.Add(holdSlack).Sub(s.engine.clock.Now()))
		defer cancel()
		got, err := s.waitOrDrain(ctx, cancel, req.ID)
		if r.Context().Err() != nil {
			s.log.InfoContext(ctx, "agent went away; request stays pending")
			return
		}
		if got != nil {
			req = got
		}
		if err != nil && !req.Status.Final() {
			s.log.WarnContext(ctx, "answering a held request before its decision", "err", err)
		}
	}
	writeJSON(w, http.StatusOK, s.answer(req, caller))
}

// waitOrDrain waits for the request to be final; Drain ends the wait by
// calling cancel, which must cancel ctx. A callback registered on the drain,
// not a goroutine per waiter, does it: with thousands of agents held, each
// goroutine and context layer is memory held for minutes.
func (s *Server) waitOrDrain(ctx context.Context, cancel context.CancelFunc, id string) (*approvebot.Request, error) {
	s.holding(1)
	defer s.holding(-1)
	stop := context.AfterFunc(s.drainCtx, cancel)
	defer stop()
	return s.engine.Wait(ctx, id)
}

// handleReady answers ready or not ready and nothing more: anyone can ask,
// and why approvebot is not ready (a platform's error, the store's) is for
// the log and the admin API (Readiness).
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if ok, _ := s.Readiness(); !ok {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// Readiness reports whether approvebot takes requests, and if not why. It
// calls no platform: Ready reports a check made in the background.
func (s *Server) Readiness() (bool, string) {
	select {
	case <-s.draining:
		return false, "shutting down"
	default:
	}
	if s.closed.Load() {
		return false, "shutting down"
	}
	if err := s.engine.Store().Ping(); err != nil {
		return false, "store unavailable: " + err.Error()
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(context.Background()); err != nil {
			return false, err.Error()
		}
	}
	return true, "ready"
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Signer == nil {
		writeError(w, approvebot.Errorf(approvebot.ENotFound, "decision signing is not configured"))
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.cfg.Signer.JWKS())
}

type preferences struct {
	wait  time.Duration // 0: no wait preference
	async bool
}

// Bounds of Prefer: wait. A shorter wait counts as minPreferWait, a longer
// one as maxPreferWait (the longest route timeout); the route's timeout
// bounds it again in Submit.
const (
	minPreferWait = time.Second
	maxPreferWait = 24 * time.Hour
)

// parsePrefer reads RFC 7240 preferences. Unknown or malformed ones are
// ignored, as the RFC asks; a wait that is a number but out of bounds is
// clamped, never wrapped around into a short deadline. Of several waits
// the shortest counts.
func parsePrefer(values []string) preferences {
	var p preferences
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			part, _, _ = strings.Cut(part, ";") // preference parameters
			name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			name = strings.ToLower(strings.TrimSpace(name))
			val = strings.TrimSpace(val)
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			switch name {
			case "respond-async":
				p.async = true
			case "wait":
				if d, ok := preferWait(val); ok && (p.wait == 0 || d < p.wait) {
					p.wait = d
				}
			}
		}
	}
	return p
}

// preferWait reads wait's delta-seconds (RFC 7240: digits only) and clamps it.
func preferWait(val string) (time.Duration, bool) {
	if val == "" || strings.ContainsFunc(val, func(c rune) bool { return c < '0' || c > '9' }) {
		return 0, false
	}
	n, err := strconv.ParseUint(val, 10, 64)
	if err != nil || n > uint64(maxPreferWait/time.Second) {
		return maxPreferWait, true // too many digits for any integer: as long as allowed
	}
	return max(time.Duration(n)*time.Second, minPreferWait), true
}

// writeJSON answers an agent or an operator: what it says (a decision, a
// request's state) changes, so no cache may keep it.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Cache-Control", "no-store")
	jsonhttp.Write(w, status, v)
}

// writeError answers with a JSON error. Only approvebot.Error messages reach
// the caller; anything else is logged by the caller of writeError and shown
// as a bare internal error.
func writeError(w http.ResponseWriter, err error) {
	var limited *LimitError
	if errors.As(err, &limited) {
		NoteRefusal(w, limited.Limit, limited.Message)
		// Which limit, and when to come back: an agent can tell a caller
		// over its rate from one with too much pending.
		w.Header().Set("Retry-After", strconv.FormatInt(int64(ceilSecond(limited.RetryAfter)/time.Second), 10))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{
			"error": limited.Message, "code": "too_many_requests", "limit": limited.Limit, "approved": false,
		})
		return
	}
	var e *approvebot.Error
	if !errors.As(err, &e) {
		e = approvebot.Errorf(approvebot.EInternal, "internal error")
	}
	NoteRefusal(w, e.Code, e.Message)
	status := map[string]int{
		approvebot.EInvalid:      http.StatusBadRequest,
		approvebot.EUnauthorized: http.StatusUnauthorized,
		approvebot.EForbidden:    http.StatusForbidden,
		approvebot.ENotFound:     http.StatusNotFound,
		approvebot.EConflict:     http.StatusConflict,
		approvebot.ETooLarge:     http.StatusRequestEntityTooLarge,
		approvebot.EUnavailable:  http.StatusServiceUnavailable,
	}[e.Code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="approvebot"`)
	}
	body := map[string]any{"error": e.Message, "code": e.Code, "approved": false}
	if e.Field != "" {
		body["field"] = e.Field
	}
	writeJSON(w, status, body)
}

// handle is mux.Handle with its refusal (a pattern registered twice, or two
// that overlap with neither more specific) returned, not panicked.
func handle(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("route %s: %v", pattern, p)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}
