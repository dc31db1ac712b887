package bot

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/store"
)

// The admin API lets operators audit a running server: bbolt allows one
// process on the file, so `approvebot audit ...` talks to the server that
// holds it. It is mounted only when an admin token is configured.

// AuditFilter selects audit records.
type AuditFilter struct {
	RequestID    string
	Since, Until time.Time
}

// Match reports whether rec passes the filter.
func (f AuditFilter) Match(rec store.Record) bool {
	if f.RequestID != "" && rec.RequestID != f.RequestID {
		return false
	}
	if f.Since.IsZero() && f.Until.IsZero() {
		return true
	}
	at, err := time.Parse(time.RFC3339Nano, rec.At)
	if err != nil {
		return false
	}
	return (f.Since.IsZero() || !at.Before(f.Since)) && (f.Until.IsZero() || at.Before(f.Until))
}

// VerifyAudit checks the whole audit trail of st.
func VerifyAudit(st *store.Store) (store.VerifyReport, error) {
	return st.Verify(policy.EntryDigest, policy.ResolutionDigest)
}

// Story is one request and every audit record about it.
type Story struct {
	Request *approvebot.Request `json:"request"`
	Events  []json.RawMessage   `json:"events"`
}

// RequestStory loads a request's story.
func RequestStory(st *store.Store, id string) (*Story, error) {
	r, err := st.Get(id)
	if err != nil {
		return nil, err
	}
	s := &Story{Request: r}
	err = st.Audit(0, func(rec store.Record, raw []byte) error {
		if rec.RequestID == id {
			s.Events = append(s.Events, json.RawMessage(append([]byte(nil), raw...)))
		}
		return nil
	})
	return s, err
}

// AdminHandlers returns the admin routes, guarded by token.
func AdminHandlers(st *store.Store, token string, extra map[string]http.HandlerFunc) map[string]http.Handler {
	want := sha256.Sum256([]byte(token))
	guard := func(h http.HandlerFunc) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				writeError(w, approvebot.Errorf(approvebot.EUnauthorized, "missing or wrong admin token"))
				return
			}
			h(w, r)
		})
	}
	routes := map[string]http.Handler{
		"GET /admin/audit": guard(func(w http.ResponseWriter, r *http.Request) {
			f, err := parseAuditFilter(r)
			if err != nil {
				writeError(w, err)
				return
			}
			w.Header().Set("Content-Type", "application/x-ndjson")
			_ = st.Audit(0, func(rec store.Record, raw []byte) error {
				if f.Match(rec) {
					_, err := w.Write(append(append([]byte(nil), raw...), '\n'))
					return err
				}
				return nil
			})
		}),
		"GET /admin/audit/verify": guard(func(w http.ResponseWriter, r *http.Request) {
			rep, err := VerifyAudit(st)
			if err != nil {
				writeError(w, approvebot.Errorf(approvebot.EUnavailable, "could not read the store"))
				return
			}
			writeJSON(w, http.StatusOK, rep)
		}),
		"GET /admin/requests/{id}": guard(func(w http.ResponseWriter, r *http.Request) {
			s, err := RequestStory(st, r.PathValue("id"))
			if errors.Is(err, store.ErrNotFound) {
				writeError(w, approvebot.Errorf(approvebot.ENotFound, "no approval request %q", r.PathValue("id")))
				return
			}
			if err != nil {
				writeError(w, approvebot.Errorf(approvebot.EUnavailable, "could not read the store"))
				return
			}
			writeJSON(w, http.StatusOK, s)
		}),
	}
	for pattern, h := range extra {
		routes[pattern] = guard(h)
	}
	return routes
}

func parseAuditFilter(r *http.Request) (AuditFilter, error) {
	q := r.URL.Query()
	f := AuditFilter{RequestID: q.Get("request")}
	for _, p := range []struct {
		key string
		dst *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.key); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, &approvebot.Error{Code: approvebot.EInvalid, Field: p.key, Message: p.key + ": want an RFC 3339 time such as 2026-01-02T15:04:05Z"}
			}
			*p.dst = t
		}
	}
	return f, nil
}
