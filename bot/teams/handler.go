package teams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/jsonhttp"
	"github.com/infracloudio/msbotbuilder-go/schema"
)

const (
	maxActivityBytes = 1 << 20
	// clickTimeout bounds the engine's work on a click: Teams gives up after
	// about 15 s and shows the clicker "Unable to reach app".
	clickTimeout = 10 * time.Second
	maxTokenLen  = 128
	// maxReasonBytes bounds the reason box's text as received: its 500
	// characters (the engine counts them) in UTF-8 at most.
	maxReasonBytes = 4 * approvebot.MaxReason
	maxPages       = 1000
	invokeAction   = "adaptiveCard/action"
	messageType    = "application/vnd.microsoft.activity.message"
	assuranceJWT   = "botframework_jwt"
	messageIDPart  = ";messageid="
)

// Handler serves POST /teams/messages, the messaging endpoint of the Azure
// Bot. Every activity is authenticated before anything is done with it.
//
// msbotbuilder-go's adapter is not used here: its ParseRequest decodes an
// unbounded body before authenticating, and its router knows only three
// activity types and cannot answer an invoke.
func (t *Teams) Handler(d bot.Decider) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /teams/messages", func(w http.ResponseWriter, r *http.Request) {
		t.serveActivity(w, r, d)
	})
	return mux
}

func (t *Teams) serveActivity(w http.ResponseWriter, r *http.Request, d bot.Decider) {
	ctx := r.Context()
	header := r.Header.Get("Authorization")
	if header == "" {
		t.refuse(w, unauthorized("no Authorization header"), "")
		return
	}
	// The token is in the header: check it before reading a byte of the
	// body, so that only the Bot Connector can make approvebot hold one.
	tok, err := t.validator.verifyToken(ctx, header)
	if err != nil {
		t.refuse(w, err, "")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxActivityBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			t.log.Warn("activity larger than 1 MiB refused")
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	in, err := parseActivity(body)
	if err != nil {
		t.log.Warn("authenticated activity is malformed", "err", err)
		http.Error(w, "malformed activity", http.StatusBadRequest)
		return
	}
	act := &in.Activity
	if err := checkActivity(tok, act.ServiceURL, act.ChannelID); err != nil {
		t.refuse(w, err, act.ID)
		return
	}
	if !strings.EqualFold(in.Tenant, t.cfg.TenantID) {
		t.refuse(w, forbidden("activity from tenant %q, not ours", in.Tenant), act.ID)
		return
	}
	t.trust(act.ServiceURL)
	t.remember(ctx, in)
	if in.Click != nil {
		ctx = bot.WithRequestID(ctx, in.Click.RequestID)
	}

	switch act.Type {
	case schema.Invoke:
		t.serveInvoke(ctx, w, d, in)
	case schema.Message:
		if in.Click != nil {
			t.serveSubmit(ctx, d, in)
		}
		w.WriteHeader(http.StatusOK)
	default:
		// conversationUpdate, installationUpdate and the rest: the reference
		// is stored; nothing else to do.
		w.WriteHeader(http.StatusOK)
	}
}

// refuse answers an unauthenticated activity without saying why; the reason
// goes to the log.
func (t *Teams) refuse(w http.ResponseWriter, err error, activityID string) {
	status := http.StatusUnauthorized
	var ae *authError
	if errors.As(err, &ae) {
		status = ae.status
	}
	bot.NoteRefusal(w, "unauthenticated", err.Error()+" (activity "+activityID+")")
	http.Error(w, http.StatusText(status), status)
}

// remember keeps the conversation reference current, so the bot can post to
// the channel later and finds a moved service URL. When the app was just
// added to a team, it also learns every channel of that team.
func (t *Teams) remember(ctx context.Context, in *inbound) {
	act := &in.Activity
	log := t.log.With("team", in.TeamID, "channel", in.ChannelID, "event", in.EventType)
	var err error
	switch {
	case act.Type == schema.InstallationUpdate && act.Action == "remove":
		err = t.forgetTeamOrChannel(in)
		log.Info("app removed; forgot its conversations")
	case in.EventType == "teamMemberRemoved" && hasBot(act.MembersRemoved, act.Recipient.ID),
		in.EventType == "teamDeleted":
		err = t.forgetTeamOrChannel(in)
		log.Info("bot left the team; forgot its conversations")
	case in.EventType == "channelDeleted" && in.ChannelID != "":
		err = t.forgetChannel(in.ChannelID)
		log.Info("channel deleted; forgot it")
	case in.ChannelID != "":
		err = t.upsertChannel(Channel{
			TeamID:      in.TeamID,
			TeamName:    in.TeamName,
			ChannelID:   in.ChannelID,
			ChannelName: in.ChannelName,
			ServiceURL:  act.ServiceURL,
			TenantID:    in.Tenant,
			BotID:       act.Recipient.ID,
			UpdatedAt:   t.cfg.Clock.Now().UTC(),
		})
	}
	if err != nil {
		log.Error("cannot store the conversation reference", "err", err)
	}
	if botAdded(in) {
		t.discoverChannels(ctx, in)
	}
}

func (t *Teams) forgetTeamOrChannel(in *inbound) error {
	if in.TeamID != "" {
		return t.forgetTeam(in.TeamID)
	}
	if in.ChannelID != "" {
		return t.forgetChannel(in.ChannelID)
	}
	return nil
}

func hasBot(members []schema.ChannelAccount, botID string) bool {
	for _, m := range members {
		if botID != "" && m.ID == botID {
			return true
		}
	}
	return false
}

// invokeResponse is the body Teams expects for an adaptiveCard/action invoke.
type invokeResponse struct {
	StatusCode int    `json:"statusCode"`
	Type       string `json:"type"`
	Value      any    `json:"value"`
}

// serveInvoke answers an Action.Execute click in the HTTP response itself.
// When the vote counted, the answer is the refreshed card: Teams shows it to
// the clicker at once, while the engine's update (PUT) brings everyone else
// the same view. When the click is refused, the answer is a message: Teams
// shows it only to the clicker, so a refusal never changes the shared card
// and tells nobody else who tried.
func (t *Teams) serveInvoke(ctx context.Context, w http.ResponseWriter, d bot.Decider, in *inbound) {
	if in.Activity.Name != invokeAction {
		// Not ours (e.g. a message extension): say so instead of timing out.
		jsonhttp.Write(w, http.StatusNotImplemented, struct{}{})
		return
	}
	if in.Click == nil {
		jsonhttp.Write(w, http.StatusOK, invokeResponse{StatusCode: http.StatusBadRequest, Type: "application/vnd.microsoft.error",
			Value: map[string]string{"code": "BadRequest", "message": "this button is not an approvebot decision"}})
		return
	}
	if in.Click.ViewAll {
		t.serveFullView(ctx, w, d, in)
		return
	}
	res := t.click(ctx, d, in)
	if res.Counted {
		data, err := RenderCard(res.View)
		if err == nil {
			jsonhttp.Write(w, http.StatusOK, invokeResponse{StatusCode: http.StatusOK, Type: cardContentType, Value: json.RawMessage(data.JSON)})
			return
		}
		t.log.ErrorContext(ctx, "cannot render the refreshed card", "err", err)
	}
	text := res.Message
	if text == "" {
		if res.Counted {
			text = "Your decision was recorded."
		} else {
			text = "Your click was not counted."
		}
	}
	jsonhttp.Write(w, http.StatusOK, invokeResponse{StatusCode: http.StatusOK, Type: messageType, Value: text})
}

// serveSubmit handles the Action.Submit fallback. Teams cannot show its
// sender a private answer, so a refusal is only logged (the engine audits it)
// and the card update reaches everyone.
func (t *Teams) serveSubmit(ctx context.Context, d bot.Decider, in *inbound) {
	res := t.click(ctx, d, in)
	if !res.Counted {
		t.log.InfoContext(ctx, "Action.Submit click refused", "user", in.Activity.From.AadObjectID, "why", res.Message)
	}
}

func (t *Teams) click(ctx context.Context, d bot.Decider, in *inbound) bot.ClickResult {
	act := &in.Activity
	c := in.Click
	if act.From.AadObjectID == "" {
		t.log.WarnContext(ctx, "click without an AAD object id refused", "from", act.From.ID)
		return bot.ClickResult{Message: "Teams did not say who you are (no Entra ID object id), so your click cannot count."}
	}
	ballot := approvebot.Ballot{
		Platform: t.Name(),
		Ref: approvebot.MessageRef{
			Channel:      in.ChannelID,
			Conversation: act.Conversation.ID,
			ID:           c.MessageID,
			ServiceURL:   act.ServiceURL,
		},
		Approver: approvebot.Approver{
			Platform:  t.Name(),
			Workspace: in.Tenant,
			UserID:    act.From.AadObjectID,
			Name:      act.From.Name,
		},
		Decision:  c.Decision,
		Assurance: assuranceJWT,
		Reason:    c.Reason,
		Confirmed: c.Confirm,
	}
	if c.FullView != "" {
		// Only the last page of this clicker's full view carries a token
		// that verifies; anything else is an ordinary click, which the
		// engine refuses to count as an approval from a partial card.
		ballot.FullView = t.checkToken(c.FullView, "approve", c.RequestID, act.From.AadObjectID, 0)
		// Paging through every value to the last page's Approve is a
		// second step of its own: it confirms the approval.
		ballot.Confirmed = ballot.Confirmed || ballot.FullView
		if !ballot.FullView {
			t.log.WarnContext(ctx, "full view approval token does not verify", "user", act.From.AadObjectID)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, clickTimeout)
	defer cancel()
	res := d.Click(ctx, ballot, c.RequestID)
	t.log.InfoContext(ctx, "click", "user", ballot.Approver.UserID, "decision", c.Decision,
		"counted", res.Counted, "decided", res.Decided)
	return res
}

// inbound is an activity with the Teams-specific parts we use pulled out.
type inbound struct {
	Activity    schema.Activity
	Tenant      string
	TeamID      string
	TeamName    string
	ChannelID   string
	ChannelName string
	EventType   string
	Click       *click
}

// click is an Approve/Deny button press, or a View all / Next page press.
type click struct {
	RequestID string
	Decision  string // approvebot.Allow or approvebot.Deny; "" for ViewAll
	MessageID string // activity id of the card clicked
	ViewAll   bool   // show page Page of the full view
	Page      int
	Token     string // proves page Page-1 was shown to the clicker
	FullView  string // on Approve from the full view's last page
	Reason    string // the card's reason box, as typed
	Confirm   bool   // pressed in "Confirm approval"
}

type idName struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type teamsExtras struct {
	ChannelData *struct {
		Team      *idName `json:"team"`
		Channel   *idName `json:"channel"`
		Tenant    *idName `json:"tenant"`
		EventType string  `json:"eventType"`
	} `json:"channelData"`
	Value json.RawMessage `json:"value"`
}

// parseActivity decodes an authenticated activity body. It is pure so it can
// be fuzzed; errors name the field that is wrong.
func parseActivity(body []byte) (*inbound, error) {
	in := &inbound{}
	if err := json.Unmarshal(body, &in.Activity); err != nil {
		return nil, fmt.Errorf("activity: %w", err)
	}
	var ex teamsExtras
	if err := json.Unmarshal(body, &ex); err != nil {
		return nil, fmt.Errorf("activity channelData or value: %w", err)
	}
	act := &in.Activity
	if act.Type == "" {
		return nil, errors.New("activity: type is missing")
	}
	if act.ServiceURL == "" {
		return nil, errors.New("activity: serviceUrl is missing")
	}
	in.Tenant = act.Conversation.TenantID
	if cd := ex.ChannelData; cd != nil {
		if cd.Tenant != nil && cd.Tenant.ID != "" {
			if in.Tenant != "" && !strings.EqualFold(in.Tenant, cd.Tenant.ID) {
				return nil, fmt.Errorf("activity: channelData.tenant.id %q differs from conversation.tenantId %q", cd.Tenant.ID, in.Tenant)
			}
			in.Tenant = cd.Tenant.ID
		}
		if cd.Team != nil {
			in.TeamID, in.TeamName = cd.Team.ID, cd.Team.Name
		}
		if cd.Channel != nil {
			in.ChannelID, in.ChannelName = cd.Channel.ID, cd.Channel.Name
		}
		in.EventType = cd.EventType
	}
	if in.ChannelID == "" && act.Conversation.ConversationType == "channel" {
		// Team-level events (the bot added to a team) come in the General
		// channel, whose id is the conversation id without a thread part.
		in.ChannelID, _, _ = strings.Cut(act.Conversation.ID, messageIDPart)
	}
	if in.ChannelID != "" && in.ChannelID == in.TeamID && in.ChannelName == "" {
		in.ChannelName = "General"
	}
	c, err := parseClick(act, ex.Value)
	if err != nil {
		return nil, err
	}
	in.Click = c
	return in, nil
}

// parseClick finds an Approve/Deny press: an Action.Execute invoke, or the
// Action.Submit message it falls back to. Other activities give nil.
func parseClick(act *schema.Activity, value json.RawMessage) (*click, error) {
	var data json.RawMessage
	verb := ""
	switch {
	case act.Type == schema.Invoke && act.Name == invokeAction:
		var v struct {
			Action *struct {
				Type string          `json:"type"`
				Verb string          `json:"verb"`
				Data json.RawMessage `json:"data"`
			} `json:"action"`
		}
		if err := json.Unmarshal(value, &v); err != nil || v.Action == nil {
			return nil, errors.New("activity: value.action is missing")
		}
		if v.Action.Type != "Action.Execute" {
			return nil, fmt.Errorf("activity: value.action.type is %q, want Action.Execute", v.Action.Type)
		}
		if v.Action.Verb == verbViewAll {
			return parseViewAll(act, v.Action.Data)
		}
		if v.Action.Verb != verbApprove && v.Action.Verb != verbDeny {
			return nil, nil // someone else's button
		}
		verb, data = v.Action.Verb, v.Action.Data
	case act.Type == schema.Message && len(value) > 0:
		data = value
	default:
		return nil, nil
	}
	var d struct {
		RequestID *string `json:"request_id"`
		Decision  string  `json:"decision"`
		FullView  string  `json:"full_view"`
		Reason    string  `json:"reason"`  // the card's reason box
		Confirm   bool    `json:"confirm"` // the Approve of "Confirm approval"
	}
	if err := json.Unmarshal(data, &d); err != nil {
		if verb == "" {
			return nil, nil // a message with some other value
		}
		return nil, fmt.Errorf("activity: value.action.data: %w", err)
	}
	if d.RequestID == nil {
		if verb == "" {
			return nil, nil
		}
		return nil, errors.New("activity: value.action.data.request_id is missing")
	}
	field := "value"
	if verb != "" {
		field = "value.action.data"
	}
	if *d.RequestID == "" || len(*d.RequestID) > approvebot.MaxIDLength {
		return nil, fmt.Errorf("activity: %s.request_id must have 1 to %d characters", field, approvebot.MaxIDLength)
	}
	if d.Decision != approvebot.Allow && d.Decision != approvebot.Deny {
		return nil, fmt.Errorf("activity: %s.decision is %q, want allow or deny", field, d.Decision)
	}
	if (verb == verbApprove && d.Decision != approvebot.Allow) || (verb == verbDeny && d.Decision != approvebot.Deny) {
		return nil, fmt.Errorf("activity: value.action.verb %q contradicts decision %q", verb, d.Decision)
	}
	if len(d.FullView) > maxTokenLen {
		return nil, fmt.Errorf("activity: %s.full_view is too long", field)
	}
	if len(d.Reason) > maxReasonBytes {
		return nil, fmt.Errorf("activity: %s.reason is over %d bytes", field, maxReasonBytes)
	}
	c := &click{RequestID: *d.RequestID, Decision: d.Decision, MessageID: act.ReplyToID, FullView: d.FullView, Reason: d.Reason, Confirm: d.Confirm}
	setMessageID(c, act)
	return c, nil
}

// parseViewAll reads a View all / Next page press.
func parseViewAll(act *schema.Activity, data json.RawMessage) (*click, error) {
	var d struct {
		RequestID string `json:"request_id"`
		Page      int    `json:"page"`
		Token     string `json:"token"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("activity: value.action.data: %w", err)
	}
	switch {
	case d.RequestID == "" || len(d.RequestID) > approvebot.MaxIDLength:
		return nil, fmt.Errorf("activity: value.action.data.request_id must have 1 to %d characters", approvebot.MaxIDLength)
	case d.Page < 1 || d.Page > maxPages:
		return nil, fmt.Errorf("activity: value.action.data.page must be 1 to %d", maxPages)
	case len(d.Token) > maxTokenLen:
		return nil, errors.New("activity: value.action.data.token is too long")
	}
	c := &click{RequestID: d.RequestID, MessageID: act.ReplyToID, ViewAll: true, Page: d.Page, Token: d.Token}
	setMessageID(c, act)
	return c, nil
}

func setMessageID(c *click, act *schema.Activity) {
	if c.MessageID == "" {
		// A card that starts a thread is the thread's root message.
		if _, id, ok := strings.Cut(act.Conversation.ID, messageIDPart); ok {
			c.MessageID = id
		}
	}
}
