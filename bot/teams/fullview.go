package teams

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/jsonhttp"
)

// The full view on Teams is the card itself, paged in place for the
// clicker only: View all is an Action.Execute, and the invoke answer is the
// first page of every bound fact; Next shows the following page the same
// way, and the last page carries Approve. Teams shows an invoke's card to
// the clicker alone, so nobody else's card changes, and the next update of
// the shared card (a vote, the outcome) brings everyone back to it.
//
// Card data travels through the clicker's client, so it proves nothing by
// itself: each Next carries a token that only approvebot can make, bound to
// the request, the clicker and the page, and the last page's Approve a token
// for approving. A page is shown only after the one before it, and an
// Approve counts as coming from the full view only with its token.

func (t *Teams) tokenKey() []byte {
	mac := hmac.New(sha256.New, []byte(t.cfg.AppPassword))
	mac.Write([]byte("approvebot full view token v1"))
	return mac.Sum(nil)
}

func (t *Teams) token(kind, requestID, user string, page int) string {
	mac := hmac.New(sha256.New, t.tokenKey())
	mac.Write([]byte(kind + "\x00" + requestID + "\x00" + user + "\x00" + strconv.Itoa(page)))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (t *Teams) checkToken(tok, kind, requestID, user string, page int) bool {
	return tok != "" && hmac.Equal([]byte(tok), []byte(t.token(kind, requestID, user, page)))
}

// serveFullView answers a View all or Next page press with that page of
// the request's full view.
func (t *Teams) serveFullView(ctx context.Context, w http.ResponseWriter, d bot.Decider, in *inbound) {
	c, act := in.Click, &in.Activity
	user := act.From.AadObjectID
	fail := func(text string) {
		jsonhttp.Write(w, http.StatusOK, invokeResponse{StatusCode: http.StatusOK, Type: messageType, Value: text})
	}
	v, ok := d.(bot.Viewer)
	switch {
	case !ok:
		fail("The full view is not available.")
		return
	case user == "":
		fail("Teams did not say who you are (no Entra ID object id), so the full view cannot be shown.")
		return
	case c.Page > 1 && !t.checkToken(c.Token, "page", c.RequestID, user, c.Page):
		t.log.WarnContext(ctx, "full view page refused: token does not verify", "user", user, "page", c.Page)
		fail("Press View all again: pages are shown one after the other.")
		return
	}
	ref := approvebot.MessageRef{Channel: in.ChannelID, Conversation: act.Conversation.ID, ID: c.MessageID, ServiceURL: act.ServiceURL}
	msg, err := v.FullView(ctx, t.Name(), ref, c.RequestID)
	if err != nil {
		t.log.InfoContext(ctx, "full view refused", "user", user, "why", err)
		fail("Cannot show this request: " + err.Error() + ".")
		return
	}
	pages := fullPages(msg)
	p := min(c.Page, len(pages))
	data, err := renderFullPage(msg, pages, p, t.token("page", c.RequestID, user, p+1), t.token("approve", c.RequestID, user, 0))
	if err != nil {
		t.log.ErrorContext(ctx, "cannot render the full view", "page", p, "err", err)
		fail("approvebot could not show this page.")
		return
	}
	t.log.InfoContext(ctx, "full view shown", "user", user, "page", p, "pages", len(pages))
	jsonhttp.Write(w, http.StatusOK, invokeResponse{StatusCode: http.StatusOK, Type: cardContentType, Value: json.RawMessage(data)})
}
