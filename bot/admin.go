package bot

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
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

// Verifier is a store whose audit log can be checked whole, as bbolt's
// store.Bolt can.
type Verifier interface {
	store.Store
	Verify(entry store.EntryDigester, resolution store.ResolutionDigester) (store.VerifyReport, error)
}

// AdminStore is what the admin API reads: a verifiable store that can also
// copy itself while it serves (an online backup).
type AdminStore interface {
	Verifier
	Backup(w io.Writer, size func(int64)) (int64, error)
}

// VerifyAudit checks the whole audit trail of st: every record's digest and
// link, every request's chain entries and resolution, and then that what
// each stored request says was asked, voted and decided is what the log
// recorded. The entry and resolution digests cover ADR-0030's fields only,
// while the request record also carries who clicked, its status and its
// chain: without the comparison, those could change unnoticed.
func VerifyAudit(st Verifier) (store.VerifyReport, error) {
	rep, err := st.Verify(policy.EntryDigest, policy.ResolutionDigest)
	if err != nil || rep.Break != nil {
		return rep, err
	}
	rep.Break, err = compareWithLog(st)
	return rep, err
}

// logged is what the audit log says about one request.
type logged struct {
	requested   *store.Record
	entries     []approvebot.Entry
	resolutions []loggedResolution
}

type loggedResolution struct {
	Resolution approvebot.Resolution `json:"resolution"`
	Status     approvebot.Status     `json:"status"`
	at         store.Head            // the record's place in the log
}

// compareWithLog holds every stored request against its audit records and
// returns the first that differs.
func compareWithLog(st store.Store) (*store.Break, error) {
	logs := map[string]*logged{}
	var brk *store.Break
	err := st.Audit(0, func(rec store.Record, _ []byte) error {
		l := logs[rec.RequestID]
		if l == nil {
			l = &logged{}
			logs[rec.RequestID] = l
		}
		unreadable := func(err error) error {
			brk = &store.Break{Seq: rec.Seq, Problem: "detail unreadable: " + err.Error()}
			return errStopCompare
		}
		switch rec.Type {
		case approvebot.EventRequested:
			if l.requested == nil {
				r := rec
				l.requested = &r
			}
		case approvebot.EventEntry:
			var d struct {
				Entry    approvebot.Entry    `json:"entry"`
				Group    string              `json:"group"`
				Approver approvebot.Approver `json:"approver"`
			}
			if err := json.Unmarshal(rec.Detail, &d); err != nil {
				return unreadable(err)
			}
			d.Entry.Group, d.Entry.Approver = d.Group, d.Approver
			l.entries = append(l.entries, d.Entry)
		case approvebot.EventResolved:
			var d loggedResolution
			if err := json.Unmarshal(rec.Detail, &d); err != nil {
				return unreadable(err)
			}
			d.at = store.Head{Seq: rec.Seq, Digest: rec.Digest}
			l.resolutions = append(l.resolutions, d)
		}
		return nil
	})
	if err == errStopCompare {
		return brk, nil
	}
	if err != nil {
		return nil, err
	}
	err = st.Each(func(r *approvebot.Request) error {
		if problem := differs(r, logs[r.ID]); problem != "" {
			brk = &store.Break{RequestID: r.ID, Problem: problem}
			return errStopCompare
		}
		return nil
	})
	if err == errStopCompare {
		return brk, nil
	}
	return nil, err
}

var errStopCompare = errors.New("stop")

// differs says how r disagrees with its audit records, or "".
func differs(r *approvebot.Request, l *logged) string {
	if l == nil || l.requested == nil {
		return "no approval_requested record in the audit log"
	}
	var asked struct {
		Schema   string            `json:"schema"`
		Digest   string            `json:"digest"`
		Body     *string           `json:"body_digest"` // older records carry none
		Fields   approvebot.Fields `json:"fields"`
		Chain    *approvebot.Chain `json:"chain"`
		Deadline *time.Time        `json:"deadline"`
	}
	if err := json.Unmarshal(l.requested.Detail, &asked); err != nil {
		return fmt.Sprintf("approval_requested record %d unreadable: %v", l.requested.Seq, err)
	}
	switch {
	case l.requested.Actor != r.Caller || asked.Schema != r.Schema || asked.Digest != r.Digest || !sameJSON(asked.Fields, r.Fields):
		return fmt.Sprintf("caller, schema, digest or fields differ from approval_requested record %d", l.requested.Seq)
	case asked.Body != nil && *asked.Body != r.BodyDigest:
		return fmt.Sprintf("body digest differs from approval_requested record %d", l.requested.Seq)
	case asked.Chain != nil && !sameJSON(asked.Chain, r.Chain): // older records carry no chain
		return fmt.Sprintf("chain differs from the one recorded when it opened (record %d)", l.requested.Seq)
	case asked.Deadline != nil && !asked.Deadline.Equal(r.Deadline):
		return fmt.Sprintf("deadline differs from the one recorded when it opened (record %d)", l.requested.Seq)
	case len(l.entries) != len(r.Entries):
		return fmt.Sprintf("%d chain entries, the audit log records %d", len(r.Entries), len(l.entries))
	}
	for i := range r.Entries {
		if !sameJSON(r.Entries[i], l.entries[i]) {
			return fmt.Sprintf("chain entry %d differs from its approval_chain_entry record", i+1)
		}
	}
	if r.Resolution == nil {
		if r.Status != approvebot.StatusPending || len(l.resolutions) > 0 {
			return fmt.Sprintf("status %s without a resolution, the audit log records %d", r.Status, len(l.resolutions))
		}
		return ""
	}
	if len(l.resolutions) != 1 {
		return fmt.Sprintf("resolved, but the audit log records %d resolutions", len(l.resolutions))
	}
	res := l.resolutions[0]
	if !sameJSON(res.Resolution, *r.Resolution) || res.Status != r.Status || r.Resolution.Status != r.Status {
		return "status or resolution differs from its approval_resolved record"
	}
	// Requests resolved before receipts existed have none.
	if rc := r.Receipt; rc != nil && (rc.AuditSeq != res.at.Seq || rc.AuditHead != res.at.Digest) {
		return fmt.Sprintf("receipt names audit record %d, but its approval_resolved record is %d (or has another digest)", rc.AuditSeq, res.at.Seq)
	}
	return ""
}

func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// Story is one request and every audit record about it.
type Story struct {
	Request *approvebot.Request `json:"request"`
	Events  []json.RawMessage   `json:"events"`
}

// RequestStory loads a request's story. id is approvebot's id of it, or
// the approval_request_id its agent gave it when only one caller used that
// id.
func RequestStory(st store.Store, id string) (*Story, error) {
	key, err := ResolveRequestID(st, id)
	if err != nil {
		return nil, err
	}
	r, err := st.Get(key)
	if err != nil {
		return nil, err
	}
	s := &Story{Request: r}
	err = st.Audit(0, func(rec store.Record, raw []byte) error {
		if rec.RequestID == r.ID {
			s.Events = append(s.Events, json.RawMessage(append([]byte(nil), raw...)))
		}
		return nil
	})
	return s, err
}

// ResolveRequestID turns an operator's request id into approvebot's id of
// the request: id itself when a request has it, else the one schema 1.0
// request whose agent gave it that id. An id that several callers used is
// an error naming approvebot's ids of each; an unknown one is ErrNotFound.
func ResolveRequestID(st store.Store, id string) (string, error) {
	_, err := st.Get(id)
	if !errors.Is(err, store.ErrNotFound) {
		return id, err
	}
	found, err := st.Find(id)
	switch {
	case err != nil:
		return "", err
	case len(found) == 0:
		return "", store.ErrNotFound
	case len(found) == 1:
		return found[0].ID, nil
	}
	var ids []string
	for _, f := range found {
		ids = append(ids, fmt.Sprintf("%s (caller %s)", f.ID, f.Caller))
	}
	return "", approvebot.Errorf(approvebot.EConflict, "approval_request_id %q was used by %d callers; name one of approvebot's ids: %s",
		id, len(found), strings.Join(ids, ", "))
}

// AdminHandlers returns the admin routes, guarded by token.
//
// token gives the token in force on each request, so a reload rotates it.
func AdminHandlers(st AdminStore, token func() string, extra map[string]http.HandlerFunc) (map[string]http.Handler, error) {
	guard := func(h http.HandlerFunc) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			want := sha256.Sum256([]byte(token()))
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
			if f.RequestID != "" {
				key, err := ResolveRequestID(st, f.RequestID)
				var ae *approvebot.Error
				switch {
				case errors.As(err, &ae):
					writeError(w, err)
					return
				case err == nil:
					f.RequestID = key
				}
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
			var ae *approvebot.Error
			if errors.As(err, &ae) {
				writeError(w, err)
				return
			}
			if err != nil {
				writeError(w, approvebot.Errorf(approvebot.EUnavailable, "could not read the store"))
				return
			}
			writeJSON(w, http.StatusOK, s)
		}),
		"GET /admin/backup": guard(func(w http.ResponseWriter, r *http.Request) {
			// Once the first byte is out the status cannot change: a failure
			// midway shows as a body shorter than its Content-Length.
			started := false
			_, err := st.Backup(w, func(size int64) {
				started = true
				w.Header().Set("Content-Type", "application/octet-stream")
				w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
				w.Header().Set("Content-Disposition", `attachment; filename="approvebot.db"`)
			})
			if err != nil && !started {
				writeError(w, approvebot.Errorf(approvebot.EUnavailable, "could not read the store"))
			}
		}),
	}
	for pattern, h := range extra {
		if _, taken := routes[pattern]; taken {
			return nil, fmt.Errorf("route %s is one of the admin API's own", pattern)
		}
		routes[pattern] = guard(h)
	}
	return routes, nil
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
