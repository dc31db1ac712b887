package bot

import (
	"bufio"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Refusals: every request answered 400, 401, 403, 413 or 429, on any
// endpoint, is logged once, with its reason, and counted by reason in
// approvebot_http_refused_total. Handlers say why with NoteRefusal (the
// agent API's writeError does it for them); the server writes the one log
// line when the answer has gone, so no refusal is logged twice or not at
// all.

// refused is the set of statuses that count as refusals.
var refused = map[int]bool{
	http.StatusBadRequest: true, http.StatusUnauthorized: true, http.StatusForbidden: true,
	http.StatusRequestEntityTooLarge: true, http.StatusTooManyRequests: true,
}

// refusalRecorder notes the status a handler answers with and why.
type refusalRecorder struct {
	http.ResponseWriter
	status int
	reason string // a short code: unauthorized, bad_signature, rate...
	detail string // free text for the log line
}

func (r *refusalRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *refusalRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (held agents
// are hijacked; callbacks set read deadlines).
func (r *refusalRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush serves Server-Sent Events, whose handler asks for an http.Flusher.
func (r *refusalRecorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

// Hijack serves callers that type-assert http.Hijacker.
func (r *refusalRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

// NoteRefusal says why the request being answered on w is refused: reason
// is a short code for the metric's label (bad_signature, malformed,
// too_large), detail is for the log line. Outside approvebot's server it
// does nothing.
func NoteRefusal(w http.ResponseWriter, reason, detail string) {
	for {
		if r, ok := w.(*refusalRecorder); ok {
			r.reason, r.detail = reason, detail
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// endpointFamilies are the first path segments refusals are counted by:
// the agents' API, the operator's, and every mounted handler's (each
// platform's callbacks, the inbox), as "/<segment>/" prefixes to names.
func endpointFamilies(handlers map[string]http.Handler) map[string]string {
	out := map[string]string{"/v1/": "agents", "/admin/": "admin"}
	for pattern := range handlers {
		path := pattern[strings.LastIndexByte(pattern, ' ')+1:]
		seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		if seg != "" {
			if _, ok := out["/"+seg+"/"]; !ok {
				out["/"+seg+"/"] = seg
			}
		}
	}
	return out
}

// endpointOf names the endpoint family of path, for the metric's label.
func (s *Server) endpointOf(path string) string {
	seg, _, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !ok {
		return "other"
	}
	if name, ok := s.families["/"+seg+"/"]; ok {
		return name
	}
	return "other"
}

// reportRefusal logs and counts rec's answer when it was a refusal.
func (s *Server) reportRefusal(rec *refusalRecorder, r *http.Request) {
	if !refused[rec.status] {
		return
	}
	reason := rec.reason
	if reason == "" {
		reason = strings.ReplaceAll(strings.ToLower(http.StatusText(rec.status)), " ", "_")
	}
	label := s.endpointOf(r.URL.Path) + "_" + reason
	s.engine.metrics.refused.WithLabelValues(label).Inc()
	s.log.Warn("request refused", "status", rec.status, "reason", label, "detail", rec.detail,
		"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
}

func newRefusedCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "approvebot_http_refused_total",
		Help: "Requests refused with 400, 401, 403, 413 or 429, by endpoint and reason (e.g. agents_unauthorized, slack_bad_signature, agents_rate).",
	}, []string{"reason"})
}
