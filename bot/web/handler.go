package web

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/display"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/store"
)

//go:embed assets
var assets embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
}).ParseFS(assets, "assets/*.html"))

// maxReason bounds a deny reason, in characters.
const maxReason = 500

// csp allows nothing but approvebot's own stylesheet, script and event
// stream, and no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// page is what a template draws.
type page struct {
	Title   string
	Who     *approvebot.Approver
	CSRF    string
	Demo    []bot.DemoPerson
	Error   string
	Flash   string
	Items   []item
	Request *requestPage
}

type item struct {
	ID, Title, Status, Waiting string
	Deadline                   time.Time
	Yours                      bool
}

type requestPage struct {
	ID      string
	View    approvebot.Message
	CanVote bool
	Why     string // why there are no buttons, when there are none
	Story   []storyLine
}

type storyLine struct {
	At, Type, Actor, Detail string
}

// Handler serves the inbox under /inbox/, deciding through engine.
func (w *Web) Handler(engine Engine) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /inbox/{$}", func(rw http.ResponseWriter, r *http.Request) { w.handleList(rw, r, engine) })
	mux.HandleFunc("GET /inbox/r/{id}", func(rw http.ResponseWriter, r *http.Request) { w.handleRequest(rw, r, engine, "", http.StatusOK) })
	mux.HandleFunc("POST /inbox/r/{id}/decide", func(rw http.ResponseWriter, r *http.Request) { w.handleDecide(rw, r, engine) })
	mux.HandleFunc("GET /inbox/events", w.handleEvents)
	mux.HandleFunc("GET /inbox/login", w.handleLogin)
	mux.HandleFunc("GET /inbox/callback", w.handleCallback)
	mux.HandleFunc("POST /inbox/demo-login", w.handleDemoLogin)
	mux.HandleFunc("POST /inbox/logout", w.handleLogout)
	mux.Handle("GET /inbox/static/", http.StripPrefix("/inbox/", http.FileServerFS(staticFS())))
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.log.Warn("inbox: cross-origin request refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		w.refuse(rw, r, http.StatusForbidden, "Refused: this request came from another site.")
	}))
	inner := cop.Handler(mux)
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		h := rw.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(rw, r.Body, 16<<10)
		inner.ServeHTTP(rw, r)
	})
}

func staticFS() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

func (w *Web) render(rw http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if s := w.session(r); s != nil {
		p.Who, p.CSRF = &s.Approver, s.CSRF
	}
	var b strings.Builder
	if err := pages.ExecuteTemplate(&b, name, p); err != nil {
		w.log.Error("inbox: render", "page", name, "err", err)
		http.Error(rw, "approvebot could not draw this page", http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.WriteHeader(status)
	_, _ = rw.Write([]byte(b.String()))
}

// refuse draws a page that says why nothing happened.
func (w *Web) refuse(rw http.ResponseWriter, r *http.Request, status int, msg string) {
	w.render(rw, r, status, "refused", page{Title: "Refused", Error: msg})
}

// signedIn returns the session, or sends the browser to sign in.
func (w *Web) signedIn(rw http.ResponseWriter, r *http.Request) *session {
	s := w.session(r)
	if s == nil {
		http.Redirect(rw, r, "/inbox/login", http.StatusSeeOther)
	}
	return s
}

// webDest is the index of r's inbox destination for its current stage
// (or -1), and of any stage when none is current.
func webDest(r *approvebot.Request) int {
	any := -1
	for i, d := range r.Destinations {
		if d.Platform != Name {
			continue
		}
		if d.Stage == r.Stage {
			return i
		}
		if any < 0 {
			any = i
		}
	}
	return any
}

// mayDecide reports whether a is an approver of one of dest's groups, for
// dest's stage.
func mayDecide(r *approvebot.Request, d approvebot.Destination, a approvebot.Approver) bool {
	if d.Stage >= len(r.Chain.Stages) {
		return false
	}
	for _, g := range r.Chain.Stages[d.Stage].Groups {
		if slices.Contains(d.Groups, g.Name) && (policy.Platforms{Platform{}}).Eligible(g, a) {
			return true
		}
	}
	return false
}

// forYou reports whether a approves at some stage of r from the inbox.
func forYou(r *approvebot.Request, a approvebot.Approver) bool {
	for _, d := range r.Destinations {
		if d.Platform == Name && mayDecide(r, d, a) {
			return true
		}
	}
	return false
}

func (w *Web) handleList(rw http.ResponseWriter, r *http.Request, engine Engine) {
	s := w.signedIn(rw, r)
	if s == nil {
		return
	}
	var items []item
	st := engine.Store()
	// The ids first, then each request in a read of its own: a read nested
	// in another can deadlock bbolt when a commit between them grows the
	// file.
	var ids []string
	err := st.Pending(func(id string, _ time.Time) error {
		ids = append(ids, id)
		return nil
	})
	for _, id := range ids {
		if err != nil {
			break
		}
		req, gerr := st.Get(id)
		if gerr != nil {
			if !errors.Is(gerr, store.ErrNotFound) {
				err = gerr
			}
			continue
		}
		if req.Status.Final() || !forYou(req, s.Approver) {
			continue
		}
		it := item{ID: req.ID, Title: display.Inline(req.Title()), Status: string(req.Status), Deadline: req.Deadline, Waiting: policy.Progress(req)}
		if i := webDest(req); i >= 0 && req.Destinations[i].Stage == req.Stage && mayDecide(req, req.Destinations[i], s.Approver) {
			it.Yours = true
		}
		items = append(items, it)
	}
	if err != nil {
		w.log.Error("inbox: list pending", "err", err)
		w.refuse(rw, r, http.StatusServiceUnavailable, "approvebot could not read its store. Try again in a moment.")
		return
	}
	w.render(rw, r, http.StatusOK, "list", page{Title: "Pending approvals", Items: items})
}

func (w *Web) handleRequest(rw http.ResponseWriter, r *http.Request, engine Engine, flash string, status int) {
	s := w.signedIn(rw, r)
	if s == nil {
		return
	}
	req, err := inboxRequest(r, engine)
	if err != nil || webDest(req) < 0 {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			w.log.ErrorContext(bot.WithRequestID(r.Context(), r.PathValue("id")), "inbox: read request", "err", err)
		}
		w.refuse(rw, r, http.StatusNotFound, "approvebot shows no such request in the inbox.")
		return
	}
	i := webDest(req)
	rp := &requestPage{ID: req.ID, View: bot.View(req, i)}
	d := req.Destinations[i]
	switch {
	case req.Status.Final():
		rp.Why = ""
	case d.Stage != req.Stage:
		rp.Why = fmt.Sprintf("Stage %d of %d is decided elsewhere (not in the inbox).", req.Stage+1, len(req.Chain.Stages))
	case !mayDecide(req, d, s.Approver) && forYou(req, s.Approver):
		rp.Why = "Your stage has not opened yet: " + policy.Progress(req) + "."
	case !mayDecide(req, d, s.Approver):
		rp.Why = "You are not an approver for " + strings.Join(d.Groups, ", ") + " at this stage, so you cannot decide it here."
	case d.State != approvebot.DeliveryPosted:
		rp.Why = "This request is being shown; reload in a moment to decide."
	case rp.View.Actionable:
		rp.CanVote = true
	}
	if req.Status.Final() {
		rp.Story = story(engine.Store(), req.ID)
	}
	w.render(rw, r, status, "request", page{Title: req.Title(), Request: rp, Flash: flash})
}

// story is the request's audit trail, one line per record.
func story(st store.Store, id string) []storyLine {
	s, err := bot.RequestStory(st, id)
	if err != nil {
		return []storyLine{{Type: "the audit trail could not be read"}}
	}
	var out []storyLine
	for _, raw := range s.Events {
		var rec store.Record
		if json.Unmarshal(raw, &rec) != nil {
			continue
		}
		var d map[string]any
		_ = json.Unmarshal(rec.Detail, &d)
		var detail string
		switch rec.Type {
		case approvebot.EventRefused:
			detail = fmt.Sprint(d["why"])
		case approvebot.EventEntry:
			if e, ok := d["entry"].(map[string]any); ok {
				detail = fmt.Sprintf("%v for %v (%v)", e["decision"], d["group"], e["identity_assurance"])
			}
		case approvebot.EventResolved:
			if res, ok := d["resolution"].(map[string]any); ok {
				detail = fmt.Sprint(res["reason"])
			}
		case approvebot.EventPosted, approvebot.EventFailed:
			detail = fmt.Sprint(d["platform"], " ", d["channel"])
		}
		out = append(out, storyLine{At: rec.At, Type: rec.Type, Actor: rec.Actor, Detail: detail})
	}
	return out
}

// inboxRequest reads the request an inbox route names. An id longer than
// any request's is not looked up: no edge of approvebot takes one.
func inboxRequest(r *http.Request, engine Engine) (*approvebot.Request, error) {
	id := r.PathValue("id")
	if len(id) > approvebot.MaxIDLength {
		return nil, store.ErrNotFound
	}
	return engine.Get(id)
}

func (w *Web) handleDecide(rw http.ResponseWriter, r *http.Request, engine Engine) {
	s := w.session(r)
	if s == nil {
		w.log.Warn("inbox: decision refused: not signed in", "remote", r.RemoteAddr)
		w.refuse(rw, r, http.StatusUnauthorized, "Refused: sign in first.")
		return
	}
	if !validCSRF(s, r.PostFormValue("csrf")) {
		w.log.Warn("inbox: decision refused: form token missing or wrong", "remote", r.RemoteAddr, "user", s.Approver.Principal())
		w.refuse(rw, r, http.StatusForbidden, "Refused: the form did not come from this session. Reload the page and decide again.")
		return
	}
	var decision string
	switch r.PostFormValue("decision") {
	case "approve":
		decision = approvebot.Allow
	case "deny":
		decision = approvebot.Deny
	default:
		w.refuse(rw, r, http.StatusBadRequest, "Refused: decision must be approve or deny.")
		return
	}
	reason, err := cleanReason(r.PostFormValue("reason"))
	if err != nil {
		w.refuse(rw, r, http.StatusBadRequest, "Refused: reason "+err.Error()+".")
		return
	}
	id := r.PathValue("id")
	req, err := inboxRequest(r, engine)
	if err != nil || webDest(req) < 0 {
		w.refuse(rw, r, http.StatusNotFound, "approvebot shows no such request in the inbox.")
		return
	}
	d := req.Destinations[webDest(req)]
	res := engine.Click(r.Context(), approvebot.Ballot{
		Platform: Name, Ref: d.Ref, Approver: s.Approver, Decision: decision, Reason: reason, Assurance: Assurance,
		Confirmed: r.PostFormValue("confirm") == "yes",
	}, id)
	status := http.StatusOK
	if !res.Counted {
		status = http.StatusForbidden
	}
	w.handleRequest(rw, r, engine, res.Message, status)
}

// cleanReason keeps a reason to one paragraph of printable text.
func cleanReason(s string) (string, error) {
	s = strings.TrimSpace(s)
	if n := len([]rune(s)); n > maxReason {
		return "", fmt.Errorf("is %d characters long; at most %d", n, maxReason)
	}
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return ' '
		}
		return r
	}, s)), nil
}

// handleEvents streams the ids of requests that change, for open pages to
// redraw themselves.
func (w *Web) handleEvents(rw http.ResponseWriter, r *http.Request) {
	if w.session(r) == nil {
		http.Error(rw, "sign in first", http.StatusUnauthorized)
		return
	}
	fl, ok := rw.(http.Flusher)
	if !ok {
		http.Error(rw, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch, cancel := w.subscribe()
	defer cancel()
	rc := http.NewResponseController(rw)
	// The server's read timeout would end the stream; the browser's
	// disconnect still ends it through the request's context.
	_ = rc.SetReadDeadline(time.Time{})
	h := rw.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	rw.WriteHeader(http.StatusOK)
	fmt.Fprint(rw, "retry: 2000\n\n")
	fl.Flush()
	// Keep-alives and write deadlines are for proxies and sockets, which
	// count real time.
	keep := time.NewTicker(25 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case id := <-ch:
			_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := fmt.Fprintf(rw, "event: changed\ndata: %s\n\n", id); err != nil {
				return
			}
			fl.Flush()
		case <-keep.C:
			if _, err := fmt.Fprint(rw, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
