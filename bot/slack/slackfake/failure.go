package slackfake

import (
	"net/http"
	"strconv"
	"time"

	"github.com/approvebot/approvebot/bot/jsonhttp"
)

// Failure is how a planned failure answers a call: RateLimited, Status,
// SlackError or Hang.
type Failure interface {
	// apply answers the call and returns the status and Slack error sent.
	apply(f *Fake, w http.ResponseWriter, r *http.Request) (int, string)
}

// RateLimited answers HTTP 429 with Retry-After (whole seconds, at least 1)
// and {"ok":false,"error":"ratelimited"}, as Slack does.
type RateLimited struct{ RetryAfter time.Duration }

func (m RateLimited) apply(_ *Fake, w http.ResponseWriter, _ *http.Request) (int, string) {
	secs := int64(m.RetryAfter.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	jsonhttp.Write(w, http.StatusTooManyRequests, map[string]any{"ok": false, "error": "ratelimited"})
	return http.StatusTooManyRequests, "ratelimited"
}

// Status answers with this HTTP status and an HTML body, as Slack's edge does
// on 5xx.
type Status int

func (m Status) apply(_ *Fake, w http.ResponseWriter, _ *http.Request) (int, string) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(int(m))
	_, _ = w.Write([]byte("<html><body>" + http.StatusText(int(m)) + "</body></html>"))
	return int(m), ""
}

// SlackError answers HTTP 200 with {"ok":false,"error":<the string>}.
type SlackError string

func (m SlackError) apply(_ *Fake, w http.ResponseWriter, _ *http.Request) (int, string) {
	jsonhttp.Write(w, http.StatusOK, map[string]any{"ok": false, "error": string(m)})
	return http.StatusOK, string(m)
}

// Hang never answers: the request blocks until the client gives up or the
// fake closes.
type Hang struct{}

func (Hang) apply(f *Fake, _ http.ResponseWriter, r *http.Request) (int, string) {
	select {
	case <-r.Context().Done():
	case <-f.done:
	}
	return 0, "hang"
}
