package slackfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Home is a user's App Home tab as last published (views.publish).
type Home struct {
	ID         string
	User       string
	CallbackID string
	Blocks     json.RawMessage
	Publishes  int
}

// Home returns user's Home tab as last published, and whether there is one.
func (f *Fake) Home(user string) (Home, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.homes[user]
	if !ok {
		return Home{}, false
	}
	c := *h
	c.Blocks = slices.Clone(h.Blocks)
	return c, true
}

// viewsPublish checks a home tab view as Slack does (type home, at most 100
// blocks, unique block ids, known block shapes) and keeps it for its user.
func (f *Fake) viewsPublish(form url.Values) (map[string]any, string) {
	user, raw := form.Get("user_id"), form.Get("view")
	if user == "" || raw == "" {
		return nil, "invalid_arguments"
	}
	if len(raw) > maxViewBytes {
		return nil, "view_too_large"
	}
	var m modalJSON
	if err := json.Unmarshal([]byte(raw), &m); err != nil || m.Type != "home" {
		return nil, "invalid_arguments"
	}
	if !checkViewBody(m) {
		return nil, "invalid_arguments"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[user]; !ok {
		return nil, "user_not_found"
	}
	h, ok := f.homes[user]
	if !ok {
		f.seq++
		h = &Home{ID: fmt.Sprintf("VH%07d", f.seq), User: user}
		f.homes[user] = h
	}
	h.CallbackID, h.Blocks = m.CallbackID, slices.Clone(m.Blocks)
	h.Publishes++
	f.notifyLocked()
	return map[string]any{"view": map[string]any{"id": h.ID, "type": "home", "team_id": TeamID, "callback_id": h.CallbackID, "blocks": h.Blocks}}, ""
}

// AppHomeOpened is the Events API event_callback Slack sends when user
// opens the app's Home tab (tab "home") or its Messages tab ("messages").
func AppHomeOpened(user, tab string) map[string]any {
	return map[string]any{
		"token": "deprecated-verification-token", "team_id": TeamID, "api_app_id": "A0FAKEAPP",
		"type": "event_callback", "event_id": fmt.Sprintf("Ev%d", time.Now().UnixNano()), "event_time": time.Now().Unix(),
		"event": map[string]any{
			"type": "app_home_opened", "user": user, "channel": "D0HOME" + user, "tab": tab,
			"event_ts": fmt.Sprintf("%d.000100", time.Now().Unix()),
		},
	}
}

// URLVerification is the challenge Slack sends when an Events API Request
// URL is saved.
func URLVerification(challenge string) map[string]any {
	return map[string]any{"token": "deprecated-verification-token", "challenge": challenge, "type": "url_verification"}
}

// SignEvent builds an Events API request: the JSON of event, signed with
// secret at now as Slack signs it.
func SignEvent(secret string, event any, now time.Time) ([]byte, http.Header) {
	body, err := json.Marshal(event)
	if err != nil {
		body = nil
	}
	h := SignBody(secret, body, now)
	h.Set("Content-Type", "application/json")
	return body, h
}

// HomeActionPayload is the block_actions payload Slack sends when user
// presses a button (blockID, actionID, value) on their Home tab.
func (f *Fake) HomeActionPayload(user, userName, blockID, actionID, value string) map[string]any {
	h, _ := f.Home(user)
	return map[string]any{
		"type":       "block_actions",
		"team":       map[string]any{"id": TeamID, "domain": "fake"},
		"user":       map[string]any{"id": user, "username": userName, "name": userName, "team_id": TeamID},
		"api_app_id": "A0FAKEAPP",
		"token":      "deprecated-verification-token",
		"container":  map[string]any{"type": "view", "view_id": h.ID},
		"trigger_id": f.Trigger(user),
		"view": map[string]any{"id": h.ID, "type": "home", "team_id": TeamID, "callback_id": h.CallbackID,
			"blocks": h.Blocks, "private_metadata": "", "hash": "1.home", "state": map[string]any{"values": map[string]any{}}},
		"actions": []any{map[string]any{
			"type": "button", "block_id": blockID, "action_id": actionID, "value": value,
			"action_ts": "1700000150.123456", "text": map[string]any{"type": "plain_text", "text": actionID, "emoji": true},
		}},
		"is_enterprise_install": false,
		"enterprise":            nil,
	}
}
