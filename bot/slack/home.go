package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	goslack "github.com/slack-go/slack"
)

// EventsPath is where the Slack app's Events API Request URL must point
// (over HTTP; in Socket Mode events arrive on the socket).
const EventsPath = "/slack/events"

// The App Home tab: its callback id, and the block id prefix of each
// request's buttons: home_review.<stage>.<f|p>.<request id>, the stage the
// tab showed the request at and whether it showed every bound fact (f) or
// not (p).
const (
	HomeCallbackID  = "approvebot_home"
	HomeBlockPrefix = "home_review."
	homeBlocks      = 100 // Slack's limit for a home tab
	// Viewers who opened Home within homeViewerTTL get it published anew
	// when a request changes; at most homeViewersMax of them (the most
	// recent), so the set stays small.
	homeViewerTTL  = 24 * time.Hour
	homeViewersMax = 1000
	homeWait       = 10 * time.Second
	maxChallenge   = 1024
)

// home is the App Home state: where home views come from, and who opened
// Home lately.
type home struct {
	src atomic.Pointer[homeSource]

	mu      sync.Mutex
	viewers map[string]homeViewer // by user id
	dirty   bool                  // a request changed since the last refresh began
	running bool                  // a refresh is queued or running
}

type homeSource struct{ bot.HomeSource }

type homeViewer struct {
	team   string
	opened time.Time
	// notice is what came of the viewer's last click on the tab: it heads
	// every publication until they click again or open the tab anew.
	notice string
}

// useHome remembers d as the source of home views, if it is one.
func (s *Slack) useHome(d bot.Decider) {
	if hs, ok := d.(bot.HomeSource); ok {
		s.home.src.Store(&homeSource{hs})
	}
}

// event is the part of an Events API body approvebot reads.
type event struct {
	Type      string `json:"type"`
	Challenge string `json:"challenge"`
	TeamID    string `json:"team_id"`
	Event     struct {
		Type string `json:"type"`
		User string `json:"user"`
		Tab  string `json:"tab"`
	} `json:"event"`
}

// parseEvent reads a verified Events API body. It is pure, for fuzzing;
// errors name the field that is wrong.
func parseEvent(body []byte) (event, error) {
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil {
		return ev, fmt.Errorf("event body is not JSON: %w", err)
	}
	switch ev.Type {
	case "url_verification":
		if ev.Challenge == "" || len(ev.Challenge) > maxChallenge {
			return ev, errors.New("url_verification: challenge is missing or too long")
		}
	case "event_callback":
		if ev.Event.Type == "app_home_opened" && (ev.Event.User == "" || ev.TeamID == "") {
			return ev, errors.New("app_home_opened: event.user or team_id is missing")
		}
	case "":
		return ev, errors.New("event body: type is missing")
	}
	return ev, nil
}

func (s *Slack) serveEvent(w http.ResponseWriter, r *http.Request) {
	// Nothing in the body is looked at before the signature holds, not
	// even the url_verification challenge.
	body, ok := s.readVerified(w, r)
	if !ok {
		return
	}
	ev, err := parseEvent(body)
	if err != nil {
		bot.NoteRefusal(w, "malformed", err.Error())
		http.Error(w, "malformed event", http.StatusBadRequest)
		return
	}
	if ev.Type == "url_verification" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, ev.Challenge)
		return
	}
	s.onEvent(r.Context(), ev)
	w.WriteHeader(http.StatusOK)
}

// onEvent acts on a verified event: an opened Home tab is published in the
// background (the event is acknowledged at once, as Slack wants within 3 s).
func (s *Slack) onEvent(ctx context.Context, ev event) {
	if ev.Type != "event_callback" || ev.Event.Type != "app_home_opened" || ev.Event.Tab != "home" {
		return
	}
	team, user := ev.TeamID, ev.Event.User
	s.homeViewer(team, user, "")
	if !s.pool.submit(func(ctx context.Context) { s.publishHome(ctx, team, user) }) {
		s.log.WarnContext(ctx, "slack home not published: worker queue full or shutting down", "user", user)
	}
}

// homeViewer records that user has their Home tab open, and what it should
// say at its top.
func (s *Slack) homeViewer(team, user, notice string) {
	s.home.mu.Lock()
	defer s.home.mu.Unlock()
	if s.home.viewers == nil {
		s.home.viewers = map[string]homeViewer{}
	}
	s.home.viewers[user] = homeViewer{team: team, opened: s.clock.Now(), notice: notice}
	if len(s.home.viewers) > homeViewersMax {
		oldest := ""
		for u, v := range s.home.viewers {
			if oldest == "" || v.opened.Before(s.home.viewers[oldest].opened) {
				oldest = u
			}
		}
		delete(s.home.viewers, oldest)
	}
}

// HomeChanged publishes Home anew for everyone who opened it lately: a
// request opened, a vote counted or a request ended. Refreshes coalesce:
// one runs at a time, and changes during it cause one more.
func (s *Slack) HomeChanged() {
	s.home.mu.Lock()
	if len(s.home.viewers) == 0 || s.home.src.Load() == nil {
		s.home.mu.Unlock()
		return
	}
	s.home.dirty = true
	if s.home.running {
		s.home.mu.Unlock()
		return
	}
	s.home.running = true
	s.home.mu.Unlock()
	if !s.pool.submit(s.refreshHomes) {
		s.home.mu.Lock()
		s.home.running = false
		s.home.mu.Unlock()
	}
}

// Recorded is called once the store has recorded a post: a new request is
// on its way to people's Home tabs.
func (s *Slack) Recorded(approvebot.MessageRef) { s.HomeChanged() }

func (s *Slack) refreshHomes(ctx context.Context) {
	s.home.mu.Lock()
	s.home.dirty = false
	type viewer struct{ team, user string }
	var viewers []viewer
	now := s.clock.Now()
	for u, v := range s.home.viewers {
		if now.Sub(v.opened) > homeViewerTTL {
			delete(s.home.viewers, u)
			continue
		}
		viewers = append(viewers, viewer{v.team, u})
	}
	s.home.mu.Unlock()
	for _, v := range viewers {
		s.publishHome(ctx, v.team, v.user)
	}
	s.home.mu.Lock()
	again := s.home.dirty
	s.home.running = again
	s.home.mu.Unlock()
	if again && !s.pool.submit(s.refreshHomes) {
		s.home.mu.Lock()
		s.home.running = false
		s.home.mu.Unlock()
	}
}

// publishHome builds user's Home tab and publishes it (views.publish),
// headed by what came of their last click there, if any.
func (s *Slack) publishHome(ctx context.Context, team, user string) {
	src := s.home.src.Load()
	if src == nil {
		return
	}
	s.home.mu.Lock()
	notice := s.home.viewers[user].notice
	s.home.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, homeWait)
	defer cancel()
	hv, err := src.Home(ctx, Name, approvebot.Approver{Platform: Name, Workspace: team, UserID: user})
	view := goslack.HomeTabViewRequest{Type: goslack.VTHomeTab, CallbackID: HomeCallbackID, Blocks: goslack.Blocks{BlockSet: HomeBlocks(hv, err, notice)}}
	if _, perr := s.api().PublishViewContext(ctx, goslack.PublishViewContextRequest{UserID: user, View: view}); perr != nil {
		s.log.WarnContext(ctx, "slack home not published", "user", user, "reason", deliveryError(perr).Reason)
		return
	}
	s.log.DebugContext(ctx, "slack home published", "user", user, "pending", len(hv.Pending))
}

// HomeBlocks lays out a Home tab: the requests pending for the viewer, each
// as its message shows it with Approve and Deny (Deny only, when the tab
// cannot show every bound fact: approving needs the message's View all),
// then the viewer's recent decisions. err, when set, replaces the lists.
func HomeBlocks(hv bot.HomeView, err error, notice string) []goslack.Block {
	blocks := []goslack.Block{goslack.NewHeaderBlock(plain("Approvals waiting for you"))}
	if notice != "" {
		blocks = append(blocks, goslack.NewSectionBlock(nil, []*goslack.TextBlockObject{plain(escapeFit(notice, 1900))}, nil))
	}
	if err != nil {
		return append(blocks, goslack.NewSectionBlock(mrkdwn(":no_entry_sign: *Cannot list your requests.*"), []*goslack.TextBlockObject{plain(escapeFit(err.Error(), 1900))}, nil))
	}
	// Room kept for the decisions (a header and their lines) and the "more" line.
	reserve := 3 + len(hv.Decided)
	more := hv.More
	if len(hv.Pending) == 0 {
		blocks = append(blocks, goslack.NewContextBlock("", plain("Nothing is waiting for your decision.")))
	}
	for i, it := range hv.Pending {
		item := homeItem(it)
		if len(blocks)+len(item)+reserve > homeBlocks {
			more += len(hv.Pending) - i
			break
		}
		blocks = append(blocks, item...)
	}
	if more > 0 {
		blocks = append(blocks, goslack.NewContextBlock("", plain(fmt.Sprintf("%d more waiting for you: decide them from their messages.", more))))
	}
	if len(hv.Decided) > 0 {
		blocks = append(blocks, goslack.NewHeaderBlock(plain("Your recent decisions")))
		for _, d := range hv.Decided {
			verb := "Approved"
			if d.Decision == approvebot.Deny {
				verb = "Denied"
			}
			line := fmt.Sprintf("%s %s (request %s) at %s; it is now %s", verb, d.Title, d.RequestID, d.At, statusText(d.Status))
			blocks = append(blocks, goslack.NewContextBlock("", plain(cut(line, lineMax))))
		}
	}
	return blocks
}

// homeItem is one request on the Home tab: its message's blocks, the
// message's own buttons replaced by the Home tab's.
func homeItem(it bot.HomeItem) []goslack.Block {
	r := Render(it.View)
	var out []goslack.Block
	for _, b := range r.Blocks {
		if a, ok := b.(*goslack.ActionBlock); ok && a.BlockID == ReviewBlockID {
			continue
		}
		out = append(out, b)
	}
	// Each button asks for confirmation in Slack's dialog, the second step
	// an approval may need (confirm_approve). A denial that needs a reason
	// is made from the message, whose Deny asks for one.
	shown := "f"
	var elems []goslack.BlockElement
	if r.Partial {
		shown = "p"
	} else {
		confirm := goslack.NewConfirmationBlockObject(plain("Approve this request?"),
			plain("The agent will be told its action was approved. This cannot be undone."), plain("Approve"), plain("Cancel"))
		elems = append(elems, goslack.NewButtonBlockElement(ApproveActionID, it.View.RequestID, plain("Approve")).WithStyle(goslack.StylePrimary).WithConfirm(confirm))
	}
	denyNeedsReason := it.View.Reason.For(approvebot.Deny) == approvebot.ReasonRequired
	if !denyNeedsReason {
		confirm := goslack.NewConfirmationBlockObject(plain("Deny this request?"),
			plain("The agent will be told its action was denied. This cannot be undone."), plain("Deny"), plain("Cancel")).WithStyle(goslack.StyleDanger)
		elems = append(elems, goslack.NewButtonBlockElement(DenyActionID, it.View.RequestID, plain("Deny")).WithStyle(goslack.StyleDanger).WithConfirm(confirm))
	}
	if len(elems) > 0 {
		out = append(out, goslack.NewActionBlock(HomeBlockPrefix+strconv.Itoa(it.Stage)+"."+shown+"."+it.View.RequestID, elems...))
	}
	if denyNeedsReason || r.Partial {
		out = append(out, goslack.NewContextBlock("", plain("Decide the rest from the request's message: it shows every value (View all) and asks for the reason a denial needs.")))
	}
	return append(out, goslack.NewDividerBlock())
}

// homeClick reads a Home tab button's block id: the stage it was shown for,
// whether every bound fact was shown, and the request id, which must be the
// button's value.
func homeClick(blockID, value string) (stage int, partial bool, ok bool) {
	rest, found := strings.CutPrefix(blockID, HomeBlockPrefix)
	if !found {
		return 0, false, false
	}
	st, rest, found := strings.Cut(rest, ".")
	if !found {
		return 0, false, false
	}
	shown, id, found := strings.Cut(rest, ".")
	n, err := strconv.Atoi(st)
	if !found || err != nil || n < 0 || (shown != "f" && shown != "p") || id != value {
		return 0, false, false
	}
	return n, shown == "p", true
}
