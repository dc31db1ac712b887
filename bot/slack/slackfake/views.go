package slackfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"time"
	"unicode/utf8"
)

// Modal limits (docs.slack.dev, modals and views.open).
const (
	maxModalBlocks     = 100
	maxViewBytes       = 250 << 10
	maxModalTitle      = 24
	maxModalButton     = 24
	maxPrivateMetadata = 3000
	maxCallbackID      = 255
	defaultTriggerLife = 10 * time.Second
	triggerLifeComment = "Slack's is 3 s; the fake allows more so a loaded test machine does not fail it"
	_                  = triggerLifeComment
)

// View is a modal as it now stands, as opened or last updated.
type View struct {
	ID              string
	Hash            string
	User            string // who the trigger belonged to
	CallbackID      string
	PrivateMetadata string
	Title           string
	Submit          string // the submit button's text; "" when none
	Blocks          json.RawMessage
	Updates         int
}

type trigger struct {
	user    string
	expires time.Time
	used    bool
}

// Trigger mints a trigger_id for a click by user, valid once, as Slack puts
// one in every interaction payload: views.open accepts it once, soon after.
func (f *Fake) Trigger(user string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := fmt.Sprintf("%d.%s", time.Now().Unix(), hex.EncodeToString(b[:]))
	f.mu.Lock()
	f.triggers[id] = &trigger{user: user, expires: time.Now().Add(defaultTriggerLife)}
	f.mu.Unlock()
	return id
}

// Views returns every modal opened, oldest first.
func (f *Fake) Views() []View {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]View, 0, len(f.viewOrder))
	for _, id := range f.viewOrder {
		v := *f.views[id]
		v.Blocks = slices.Clone(v.Blocks)
		out = append(out, v)
	}
	return out
}

// ViewByID returns the modal with id.
func (f *Fake) ViewByID(id string) (View, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.views[id]
	if !ok {
		return View{}, false
	}
	c := *v
	c.Blocks = slices.Clone(v.Blocks)
	return c, true
}

type modalJSON struct {
	Type            string          `json:"type"`
	Title           *textObj        `json:"title"`
	Close           *textObj        `json:"close"`
	Submit          *textObj        `json:"submit"`
	Blocks          json.RawMessage `json:"blocks"`
	PrivateMetadata string          `json:"private_metadata"`
	CallbackID      string          `json:"callback_id"`
}

// checkModal validates a view parameter as Slack does for modals.
func checkModal(raw string) (modalJSON, string) {
	var m modalJSON
	if raw == "" {
		return m, "invalid_arguments"
	}
	if len(raw) > maxViewBytes {
		return m, "view_too_large"
	}
	if err := json.Unmarshal([]byte(raw), &m); err != nil || m.Type != "modal" {
		return m, "invalid_arguments"
	}
	for _, t := range []struct {
		t        *textObj
		max      int
		required bool
	}{{m.Title, maxModalTitle, true}, {m.Close, maxModalButton, false}, {m.Submit, maxModalButton, false}} {
		if t.t == nil {
			if t.required {
				return m, "invalid_arguments"
			}
			continue
		}
		if t.t.Type != "plain_text" {
			return m, "invalid_arguments"
		}
		if n := utf8.RuneCountInString(t.t.Text); n == 0 || n > t.max {
			return m, "invalid_arguments"
		}
	}
	if !checkViewBody(m) {
		return m, "invalid_arguments"
	}
	return m, ""
}

func (f *Fake) viewsOpen(form url.Values) (map[string]any, string) {
	tid := form.Get("trigger_id")
	m, errCode := checkModal(form.Get("view"))
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.triggers[tid]
	switch {
	case tid == "" || !ok:
		return nil, "invalid_trigger_id"
	case t.used:
		return nil, "exchanged_trigger_id"
	case time.Now().After(t.expires):
		return nil, "expired_trigger_id"
	}
	t.used = true
	if errCode != "" {
		return nil, errCode
	}
	f.seq++
	v := &View{ID: fmt.Sprintf("V%08d", f.seq), User: t.user}
	f.views[v.ID] = v
	f.viewOrder = append(f.viewOrder, v.ID)
	v.set(m)
	return map[string]any{"view": v.json()}, ""
}

func (f *Fake) viewsUpdate(form url.Values) (map[string]any, string) {
	m, errCode := checkModal(form.Get("view"))
	if errCode != "" {
		return nil, errCode
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.views[form.Get("view_id")]
	if !ok {
		return nil, "not_found"
	}
	if h := form.Get("hash"); h != "" && h != v.Hash {
		return nil, "hash_conflict"
	}
	v.set(m)
	v.Updates++
	return map[string]any{"view": v.json()}, ""
}

func (v *View) set(m modalJSON) {
	v.CallbackID, v.PrivateMetadata, v.Blocks = m.CallbackID, m.PrivateMetadata, slices.Clone(m.Blocks)
	v.Title, v.Submit = m.Title.Text, ""
	if m.Submit != nil {
		v.Submit = m.Submit.Text
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	v.Hash = fmt.Sprintf("%d.%s", time.Now().Unix(), hex.EncodeToString(b[:]))
}

func (v *View) json() map[string]any {
	out := map[string]any{
		"id": v.ID, "team_id": TeamID, "type": "modal", "callback_id": v.CallbackID,
		"private_metadata": v.PrivateMetadata, "hash": v.Hash, "blocks": v.Blocks,
		"title": map[string]any{"type": "plain_text", "text": v.Title},
		"state": map[string]any{"values": map[string]any{}}, "app_id": "A0FAKEAPP", "bot_id": "B0FAKEBOT",
		"root_view_id": v.ID, "previous_view_id": nil, "clear_on_close": false, "notify_on_close": false,
	}
	if v.Submit != "" {
		out["submit"] = map[string]any{"type": "plain_text", "text": v.Submit}
	}
	return out
}

// ViewSubmissionPayload is the view_submission payload Slack sends when
// user presses the submit button of view v (docs.slack.dev,
// view_submission payload).
func ViewSubmissionPayload(v View, user, userName string) map[string]any {
	return map[string]any{
		"type":                  "view_submission",
		"team":                  map[string]any{"id": TeamID, "domain": "fake"},
		"user":                  map[string]any{"id": user, "username": userName, "name": userName, "team_id": TeamID},
		"api_app_id":            "A0FAKEAPP",
		"token":                 "deprecated-verification-token",
		"trigger_id":            "1700000200.1234.submit",
		"view":                  v.json(),
		"response_urls":         []any{},
		"is_enterprise_install": false,
		"enterprise":            nil,
	}
}

// ViewActionPayload is the block_actions payload Slack sends when user
// presses a button (blockID, actionID, value) inside view v.
func ViewActionPayload(v View, user, userName, trigger, blockID, actionID, value string) map[string]any {
	return map[string]any{
		"type":       "block_actions",
		"team":       map[string]any{"id": TeamID, "domain": "fake"},
		"user":       map[string]any{"id": user, "username": userName, "name": userName, "team_id": TeamID},
		"api_app_id": "A0FAKEAPP",
		"token":      "deprecated-verification-token",
		"container":  map[string]any{"type": "view", "view_id": v.ID},
		"trigger_id": trigger,
		"view":       v.json(),
		"actions": []any{map[string]any{
			"type": "button", "block_id": blockID, "action_id": actionID, "value": value,
			"action_ts": "1700000150.123456", "text": map[string]any{"type": "plain_text", "text": actionID, "emoji": true},
		}},
		"is_enterprise_install": false,
		"enterprise":            nil,
	}
}

// ViewSubmissionWithInput is ViewSubmissionPayload with text typed into
// the plain_text_input actionID of input block blockID, as Slack reports
// it in view.state.values.
func ViewSubmissionWithInput(v View, user, userName, blockID, actionID, text string) map[string]any {
	p := ViewSubmissionPayload(v, user, userName)
	view := p["view"].(map[string]any)
	view["state"] = map[string]any{"values": map[string]any{
		blockID: map[string]any{actionID: map[string]any{"type": "plain_text_input", "value": text}},
	}}
	return p
}

// ViewClosedPayload is the view_closed payload Slack sends when user
// closes view v with its Close button (sent only for views that ask with
// notify_on_close).
func ViewClosedPayload(v View, user, userName string) map[string]any {
	return map[string]any{
		"type":                  "view_closed",
		"team":                  map[string]any{"id": TeamID, "domain": "fake"},
		"user":                  map[string]any{"id": user, "username": userName, "name": userName, "team_id": TeamID},
		"api_app_id":            "A0FAKEAPP",
		"view":                  v.json(),
		"is_cleared":            false,
		"is_enterprise_install": false,
		"enterprise":            nil,
	}
}

// checkViewBody applies what Slack checks of every view, modal or Home
// tab: metadata and callback id sizes, 1 to 100 blocks, unique block ids,
// and each block's own limits.
func checkViewBody(m modalJSON) bool {
	if len(m.PrivateMetadata) > maxPrivateMetadata || len(m.CallbackID) > maxCallbackID {
		return false
	}
	var blocks []block
	if err := json.Unmarshal(m.Blocks, &blocks); err != nil || len(blocks) == 0 || len(blocks) > maxModalBlocks {
		return false
	}
	ids := map[string]bool{}
	for _, b := range blocks {
		if b.BlockID != nil {
			if ids[*b.BlockID] || *b.BlockID == "" || utf8.RuneCountInString(*b.BlockID) > maxBlockID {
				return false
			}
			ids[*b.BlockID] = true
		}
		if _, ok := checkBlock(b); !ok {
			return false
		}
	}
	return true
}
