package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

// interact sends a signed block_actions payload by user, as Slack does,
// with a trigger_id the fake's views.open accepts. A button that opens the
// reason modal (Deny, or Approve with a comment) does not vote by itself:
// the person then submits the modal, here with h's reasonText, and that
// submission's answer is returned, as the step that votes.
func (h *harness) slackClick(user string, payload map[string]any, secret string, at time.Time) (response, error) {
	payload["trigger_id"] = h.slack.Trigger(user)
	r, err := h.postInteraction(payload, secret, at)
	if err != nil || r.status != http.StatusOK {
		return r, err
	}
	actions, _ := payload["actions"].([]any)
	if len(actions) != 1 {
		return r, nil
	}
	a, _ := actions[0].(map[string]any)
	switch a["action_id"] {
	case slack.DenyActionID, slack.DenyReasonActionID, slack.ApproveCommentActionID:
	default:
		return r, nil
	}
	v, ok := h.reasonView(user, a["value"].(string))
	if !ok {
		return r, nil // not opened: the clicker was told why
	}
	return h.postInteraction(slackfake.ViewSubmissionWithInput(v, user, strings.ToLower(user), slack.ReasonBlockID, slack.ReasonInputID, h.reasonText), secret, at)
}

// reasonView is the newest reason modal opened for user about request id
// that has not been submitted yet.
func (h *harness) reasonView(user, id string) (slackfake.View, bool) {
	views := h.slack.Views()
	for i := len(views) - 1; i >= 0; i-- {
		v := views[i]
		if v.CallbackID != slack.ReasonCallbackID || v.User != user || metaRequest(v.PrivateMetadata) != id {
			continue
		}
		if _, done := h.submittedViews.LoadOrStore(v.ID, true); done {
			continue
		}
		return v, true
	}
	return slackfake.View{}, false
}

// metaRequest reads the request id out of a view's sealed metadata (its
// first half is plain base64url JSON).
func metaRequest(sealed string) string {
	body, _, _ := strings.Cut(sealed, ".")
	data, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return ""
	}
	var m struct {
		R string `json:"r"`
	}
	_ = json.Unmarshal(data, &m)
	return m.R
}

func (h *harness) postInteraction(payload map[string]any, secret string, at time.Time) (response, error) {
	body, header := slackfake.SignInteraction(secret, payload, at)
	return h.postSigned("/slack/interactions", body, header)
}

// postSigned posts body to path with the signature headers Slack sends.
func (h *harness) postSigned(path string, body []byte, header http.Header) (response, error) {
	req, err := http.NewRequest(http.MethodPost, h.url+path, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}
