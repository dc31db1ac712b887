package slack

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	goslack "github.com/slack-go/slack"
)

// viewMeta is what a full-view modal carries in its private_metadata: the
// request, the message it was opened from, who opened it and which page it
// shows. Slack returns it, signed, with every click in the modal; approvebot
// also seals it with a MAC of its own, so neither a bug nor a crafted view
// can make a submission look like it came from the last page of someone
// else's view.
type viewMeta struct {
	Request string `json:"r"`
	Channel string `json:"c"`
	TS      string `json:"t"`
	User    string `json:"u"`
	Page    int    `json:"p"` // 0-based
	Pages   int    `json:"n"`
	// The reason modal's: the decision its submit casts and whether a
	// reason is required. A full view has neither.
	Decision string `json:"d,omitempty"`
	Rule     string `json:"q,omitempty"`
}

// metaKey seals full-view metadata. It derives from the bot token, which
// every configuration has (Socket Mode may have no signing secret) and
// which stays the same for the life of the process.
func (s *Slack) metaKey() []byte {
	mac := hmac.New(sha256.New, []byte(s.socket.botToken))
	mac.Write([]byte("approvebot full view metadata v1"))
	return mac.Sum(nil)
}

func (s *Slack) sealMeta(m viewMeta) string {
	data, _ := json.Marshal(m) // plain strings and ints always marshal
	mac := hmac.New(sha256.New, s.metaKey())
	mac.Write(data)
	return base64.RawURLEncoding.EncodeToString(data) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (s *Slack) openMeta(sealed string) (viewMeta, error) {
	body, sig, ok := strings.Cut(sealed, ".")
	if !ok {
		return viewMeta{}, errors.New("private_metadata is not sealed")
	}
	data, err1 := base64.RawURLEncoding.DecodeString(body)
	got, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil {
		return viewMeta{}, errors.New("private_metadata is not base64url")
	}
	mac := hmac.New(sha256.New, s.metaKey())
	mac.Write(data)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return viewMeta{}, errors.New("private_metadata seal does not verify")
	}
	var m viewMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return viewMeta{}, err
	}
	if m.Pages < 1 || m.Page < 0 || m.Page >= m.Pages || m.Request == "" {
		return viewMeta{}, errors.New("private_metadata names no valid page")
	}
	return m, nil
}

// serveFullView opens the full view from a message's View all button, or
// moves an open one to its next page. Whatever goes wrong, the clicker is
// told (privately) and nothing is decided.
func (s *Slack) serveFullView(ctx context.Context, d bot.Decider, in interaction) {
	v, ok := d.(bot.Viewer)
	c := in.click
	m := viewMeta{Request: c.RequestID, Channel: c.Channel, TS: c.MessageTS, User: c.UserID}
	if in.kind == kindNextPage {
		var err error
		if m, err = s.openMeta(in.metadata); err != nil || m.User != c.UserID {
			s.log.WarnContext(ctx, "slack full view page refused", "user", c.UserID, "err", err)
			return
		}
		m.Page++
	}
	ctx = bot.WithRequestID(ctx, m.Request)
	tell := func(text string) {
		if m.Channel == "" {
			return
		}
		if _, err := s.api().PostEphemeralContext(ctx, m.Channel, c.UserID,
			goslack.MsgOptionText(escapeFit(text, 3000), false), goslack.MsgOptionDisableMarkdown()); err != nil {
			s.log.WarnContext(ctx, "slack ephemeral reply failed", "user", c.UserID, "reason", deliveryError(err).Reason)
		}
	}
	if !ok {
		tell("The full view is not available.")
		return
	}
	msg, err := v.FullView(ctx, Name, approvebot.MessageRef{Channel: m.Channel, ID: m.TS}, m.Request)
	if err != nil {
		s.log.InfoContext(ctx, "slack full view refused", "user", c.UserID, "why", err)
		tell("Cannot show this request: " + err.Error() + ".")
		return
	}
	pages := fullViewPages(msg)
	m.Pages = len(pages)
	if m.Page >= m.Pages {
		m.Page = m.Pages - 1
	}
	view := fullViewModal(msg, pages, m.Page, s.sealMeta(m))
	if in.kind == kindNextPage {
		_, err = s.api().UpdateViewContext(ctx, view, "", in.viewHash, in.viewID)
	} else {
		_, err = s.api().OpenViewContext(ctx, in.triggerID, view)
	}
	if err != nil {
		de := deliveryError(err)
		s.log.WarnContext(ctx, "slack full view failed", "user", c.UserID, "page", m.Page+1, "reason", de.Reason)
		tell("Could not open the full view (" + de.Reason + "). Press View all again.")
		return
	}
	s.log.InfoContext(ctx, "slack full view shown", "user", c.UserID, "page", m.Page+1, "pages", m.Pages)
}

// viewRefusal is the answer to a refused view_submission: it replaces the
// modal with approvebot's explanation (the modal has no input blocks that
// Slack's "errors" answer could point at).
func viewRefusal(text string) goslack.ViewSubmissionResponse {
	return goslack.ViewSubmissionResponse{
		ResponseAction: goslack.RAUpdate,
		View: &goslack.ModalViewRequest{
			Type:   goslack.VTModal,
			Title:  plain(modalTitle),
			Close:  plain("Close"),
			Blocks: goslack.Blocks{BlockSet: []goslack.Block{goslack.NewSectionBlock(mrkdwn(":no_entry_sign: *Not approved.*"), []*goslack.TextBlockObject{plain(text)}, nil)}},
		},
	}
}

// openReason opens the reason modal for a Deny (or an Approve that takes a
// comment) with the click's trigger_id: nothing is decided until it is
// submitted. If it cannot be opened, the clicker is told privately.
func (s *Slack) openReason(ctx context.Context, in interaction) {
	c := in.click
	ctx = bot.WithRequestID(ctx, c.RequestID)
	m := viewMeta{Request: c.RequestID, Channel: c.Channel, TS: c.MessageTS, User: c.UserID, Pages: 1, Decision: c.Decision, Rule: in.rule}
	if _, err := s.api().OpenViewContext(ctx, in.triggerID, reasonModal(c.Decision, in.rule, s.sealMeta(m))); err != nil {
		de := deliveryError(err)
		s.log.WarnContext(ctx, "slack reason modal failed", "user", c.UserID, "reason", de.Reason)
		if _, err := s.api().PostEphemeralContext(ctx, c.Channel, c.UserID,
			goslack.MsgOptionText(escapeFit("Nothing changed: the form could not be opened ("+de.Reason+"). Press the button again.", 3000), false),
			goslack.MsgOptionDisableMarkdown()); err != nil {
			s.log.WarnContext(ctx, "slack ephemeral reply failed", "user", c.UserID, "reason", deliveryError(err).Reason)
		}
		return
	}
	s.log.InfoContext(ctx, "slack reason modal shown", "user", c.UserID, "decision", c.Decision)
}
