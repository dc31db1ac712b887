package bot

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/store"
)

// Home sizes: the most pending requests one home surface lists, the most
// recent decisions it recalls, and how many of the newest requests are
// searched for those decisions.
const (
	HomePending   = 20
	HomeDecided   = 10
	homeRecentCap = 500
)

// HomeItem is one pending request a person may decide now.
type HomeItem struct {
	View  approvebot.Message
	Stage int // the stage the person would decide (the current one)
}

// HomeDecision is one of a person's recent votes.
type HomeDecision struct {
	RequestID string
	Title     string // inert one-line text
	Decision  string // approvebot.Allow or approvebot.Deny
	Status    approvebot.Status
	At        string // when they voted (RFC 3339, as in the chain entry)
}

// HomeView is what a person's home surface shows: the requests pending
// whose current stage they may decide (soonest deadline first), and their
// recent decisions (newest first).
type HomeView struct {
	Pending []HomeItem
	More    int // pending requests for them beyond Pending
	Decided []HomeDecision
}

// HomeSource builds home surfaces. The engine implements it; adapters call it.
type HomeSource interface {
	Home(ctx context.Context, platform string, who approvebot.Approver) (HomeView, error)
}

// HomeRefresher is an optional Platform method: the engine calls it when a
// request opened, a vote counted or a request ended, so that home surfaces
// people have open can be shown anew. It must not block.
type HomeRefresher interface {
	HomeChanged()
}

var _ HomeSource = (*Engine)(nil)

// homeChanged tells the platforms with home surfaces that requests changed.
func (e *Engine) homeChanged() {
	for _, p := range e.platforms {
		if h, ok := p.(HomeRefresher); ok {
			h.HomeChanged()
		}
	}
}

// Home lists what who may decide now on platform, and what they decided
// lately. who is completed by the platform (email, user groups) first, as
// for a click; a person it cannot identify sees an error, never a list.
func (e *Engine) Home(ctx context.Context, platform string, who approvebot.Approver) (HomeView, error) {
	p := e.platforms[platform]
	if p == nil {
		return HomeView{}, errors.New("this platform is not configured")
	}
	// The ids first, then each request: a read inside another read can
	// deadlock bbolt when a commit waits between them to grow the file.
	var ids []string
	err := e.store.Pending(func(id string, _ time.Time) error {
		ids = append(ids, id)
		return nil
	})
	var pending []*approvebot.Request
	var usergroups []string
	for _, id := range ids {
		if err != nil {
			break
		}
		var r *approvebot.Request
		r, err = e.store.Get(id)
		if errors.Is(err, store.ErrNotFound) {
			err = nil
			continue
		}
		if err == nil && !r.Status.Final() && r.Stage < len(r.Chain.Stages) {
			pending = append(pending, r)
			for _, g := range policy.Usergroups(r.Chain, platform) {
				if !slices.Contains(usergroups, g) {
					usergroups = append(usergroups, g)
				}
			}
		}
	}
	if err != nil {
		e.log.Error("home: list pending", "err", err)
		return HomeView{}, errors.New("approvebot could not read its store; try again in a moment")
	}
	who, err = p.Identify(ctx, who, approvebot.MessageRef{}, usergroups)
	if err != nil {
		e.log.Warn("home: cannot identify viewer", "platform", platform, "user", who.UserID, "err", err)
		if errors.Is(err, approvebot.ErrIneligible) {
			return HomeView{}, errors.New("your account may not approve requests")
		}
		return HomeView{}, errors.New("approvebot could not verify who you are; try again in a moment")
	}
	var out HomeView
	for _, r := range pending {
		if !mayDecideNow(e.Policy().Platforms, r, who) {
			continue
		}
		if len(out.Pending) == HomePending {
			out.More++
			continue
		}
		out.Pending = append(out.Pending, HomeItem{View: View(r, -1), Stage: r.Stage})
	}
	err = e.store.Recent(homeRecentCap, func(r *approvebot.Request) bool {
		for i := len(r.Entries) - 1; i >= 0; i-- {
			en := r.Entries[i]
			if en.Approver.Platform == who.Platform && en.Approver.UserID == who.UserID {
				out.Decided = append(out.Decided, HomeDecision{RequestID: r.ID, Title: View(r, -1).Title, Decision: en.Decision, Status: r.Status, At: en.DecidedAt})
				break
			}
		}
		return len(out.Decided) < HomeDecided
	})
	if err != nil {
		e.log.Error("home: recent decisions", "err", err)
		return HomeView{}, errors.New("approvebot could not read its store; try again in a moment")
	}
	return out, nil
}

// mayDecideNow reports whether who is an approver of the request's current
// stage who has not voted in it yet.
func mayDecideNow(ps policy.Platforms, r *approvebot.Request, who approvebot.Approver) bool {
	for _, en := range r.Entries {
		if en.StageIndex == r.Stage && en.Approver.Platform == who.Platform && en.Approver.UserID == who.UserID {
			return false
		}
	}
	for _, g := range r.Chain.Stages[r.Stage].Groups {
		if ps.Eligible(g, who) {
			return true
		}
	}
	return false
}
