package slackfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// SignInteraction builds the request Slack sends to an interactivity URL:
// a form body with one payload field holding the JSON of payload, signed
// with secret at now (v0 scheme). A payload that is already []byte or a
// string is sent as is, so tests can send malformed JSON.
func SignInteraction(secret string, payload any, now time.Time) ([]byte, http.Header) {
	var js string
	switch p := payload.(type) {
	case []byte:
		js = string(p)
	case string:
		js = p
	default:
		b, err := json.Marshal(payload)
		if err != nil {
			// A test handing in something unmarshalable gets an empty payload,
			// which the handler must refuse anyway.
			b = nil
		}
		js = string(b)
	}
	body := []byte(url.Values{"payload": {js}}.Encode())
	return body, SignBody(secret, body, now)
}

// SignBody signs a raw request body the way Slack does and returns the
// headers to send with it.
func SignBody(secret string, body []byte, now time.Time) http.Header {
	ts := strconv.FormatInt(now.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(body)
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return h
}

// Click describes a button press. Empty fields take realistic defaults.
type Click struct {
	UserID, UserName string
	TeamID           string // default TeamID
	Channel          string // default "C0APPROVALS"
	MessageTS        string // default "1700000000.000001"
	ActionID         string // "approve" or "deny"
	BlockID          string // default "approvebot_review"
	OmitBlockID      bool   // send a legacy attachment action, without block_id
	Value            string // the request id
	Type             string // default "block_actions"
	TriggerID        string // default: one views.open will refuse; see Fake.Trigger
}

// BlockActionPayload is the block_actions payload Slack sends for c, shaped
// like a real one (docs.slack.dev, block_actions payload).
func BlockActionPayload(c Click) map[string]any {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	team := def(c.TeamID, TeamID)
	channel := def(c.Channel, "C0APPROVALS")
	ts := def(c.MessageTS, "1700000000.000001")
	userID := def(c.UserID, "U0CLICKER")
	userName := def(c.UserName, "clicker")
	action := map[string]any{
		"action_id": c.ActionID,
		"type":      "button",
		"value":     c.Value,
		"action_ts": "1700000100.123456",
		"text":      map[string]any{"type": "plain_text", "text": c.ActionID, "emoji": true},
	}
	if c.OmitBlockID {
		// Shaped like a legacy attachment action, which has no block_id and
		// a plain name instead of a text object.
		delete(action, "text")
		action["name"] = c.ActionID
	} else {
		action["block_id"] = def(c.BlockID, "approvebot_review")
	}
	return map[string]any{
		"type":       def(c.Type, "block_actions"),
		"user":       map[string]any{"id": userID, "username": userName, "name": userName, "team_id": team},
		"api_app_id": "A0FAKEAPP",
		"token":      "deprecated-verification-token",
		"container": map[string]any{
			"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false,
		},
		"trigger_id":            def(c.TriggerID, "1700000100.1234.abcdef"),
		"team":                  map[string]any{"id": team, "domain": "fake"},
		"enterprise":            nil,
		"is_enterprise_install": false,
		"channel":               map[string]any{"id": channel, "name": "approvals"},
		"message":               map[string]any{"type": "message", "ts": ts, "bot_id": "B0FAKEBOT", "text": "Approval needed"},
		"state":                 map[string]any{"values": map[string]any{}},
		"response_url":          "https://hooks.slack.com/actions/T0FAKETEAM/1/fake",
		"actions":               []any{action},
	}
}
