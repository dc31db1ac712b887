package teamsfake

import (
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Activity is an inbound activity as Teams sends it, open to tweaks.
type Activity = map[string]any

type signOptions struct {
	audience, issuer, serviceURL, kid string
	key                               *rsa.PrivateKey
	notBefore, expiry                 time.Time
	noHeader                          bool
	tenant                            string
}

// SignOption breaks or changes one thing about a signed activity.
type SignOption func(*signOptions)

// WithAudience sets the token's aud (default: the app id).
func WithAudience(aud string) SignOption { return func(o *signOptions) { o.audience = aud } }

// WithIssuer sets the token's iss (default: https://api.botframework.com).
func WithIssuer(iss string) SignOption { return func(o *signOptions) { o.issuer = iss } }

// Expired makes a token that expired an hour ago.
func Expired() SignOption {
	return func(o *signOptions) {
		o.notBefore = time.Now().Add(-2 * time.Hour)
		o.expiry = time.Now().Add(-time.Hour)
	}
}

// WithLifetime sets nbf and exp.
func WithLifetime(nbf, exp time.Time) SignOption {
	return func(o *signOptions) { o.notBefore, o.expiry = nbf, exp }
}

// UnknownKey signs with a key the JWKS does not publish.
func UnknownKey() SignOption {
	return func(o *signOptions) { o.kid = "fake-key-unknown" }
}

// UnendorsedKey signs with a published key that is not endorsed for msteams.
func UnendorsedKey() SignOption { return func(o *signOptions) { o.kid = unendorsedKeyID } }

// WithServiceURLClaim sets the serviceurl claim (default: the activity's).
func WithServiceURLClaim(u string) SignOption { return func(o *signOptions) { o.serviceURL = u } }

// Unsigned sends no Authorization header at all.
func Unsigned() SignOption { return func(o *signOptions) { o.noHeader = true } }

// WithTenant rewrites the activity's tenant (conversation.tenantId and
// channelData.tenant.id) before signing: a genuine activity from another
// organization.
func WithTenant(id string) SignOption { return func(o *signOptions) { o.tenant = id } }

// SignActivity encodes activity and signs a Bot Framework token for it,
// returning the body and the headers to send.
func (f *Fake) SignActivity(activity any, opts ...SignOption) ([]byte, http.Header, error) {
	body, err := json.Marshal(activity)
	if err != nil {
		return nil, nil, err
	}
	var probe struct {
		ServiceURL string `json:"serviceUrl"`
	}
	_ = json.Unmarshal(body, &probe)
	var o signOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.tenant != "" {
		if body, err = retenant(body, o.tenant); err != nil {
			return nil, nil, err
		}
	}
	o = signOptions{
		audience: f.AppID, issuer: Issuer, serviceURL: probe.ServiceURL, kid: keyID, key: f.key,
		notBefore: time.Now().Add(-time.Minute), expiry: time.Now().Add(time.Hour),
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch o.kid {
	case unendorsedKeyID:
		o.key = f.unendorsedKey
	case keyID:
	default:
		o.key = f.strangerKey
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if o.noHeader {
		return body, h, nil
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: o.key, KeyID: o.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, nil, err
	}
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer:    o.issuer,
		Audience:  jwt.Audience{o.audience},
		NotBefore: jwt.NewNumericDate(o.notBefore),
		Expiry:    jwt.NewNumericDate(o.expiry),
	}).Claims(map[string]any{"serviceurl": o.serviceURL, "version": "1.0"}).Serialize()
	if err != nil {
		return nil, nil, err
	}
	h.Set("Authorization", "Bearer "+tok)
	return body, h, nil
}

// From is the user behind an activity.
type From struct {
	AadObjectID, Name string
}

// Thread says where a click happened: the channel, the thread conversation
// and the card's activity id (as Post returned them).
type Thread struct {
	ChannelID, Conversation, ActivityID string
}

func (f *Fake) base(typ, conversationID string) Activity {
	return Activity{
		"type":       typ,
		"id":         fmt.Sprintf("f:%d", time.Now().UnixNano()),
		"timestamp":  time.Now().UTC().Format(time.RFC3339Nano),
		"serviceUrl": f.ServiceURL(),
		"channelId":  "msteams",
		"recipient":  map[string]any{"id": "28:" + f.AppID, "name": "approvebot"},
		"conversation": map[string]any{
			"isGroup": true, "conversationType": "channel", "tenantId": f.TenantID, "id": conversationID,
		},
	}
}

func (f *Fake) tenant() map[string]any { return map[string]any{"id": f.TenantID} }

// BotAddedToTeam is the conversationUpdate Teams sends when the app is
// installed in a team; it arrives in the General channel, whose id is the
// team id.
func (f *Fake) BotAddedToTeam(teamID, teamName string, by From) Activity {
	a := f.base("conversationUpdate", teamID)
	a["from"] = map[string]any{"id": "29:" + by.AadObjectID, "aadObjectId": by.AadObjectID, "name": by.Name}
	a["membersAdded"] = []any{map[string]any{"id": "28:" + f.AppID}}
	a["channelData"] = map[string]any{
		"team":      map[string]any{"id": teamID, "name": teamName, "aadGroupId": "00000000-0000-0000-0000-00000000000a"},
		"eventType": "teamMemberAdded", "tenant": f.tenant(),
	}
	return a
}

// ChannelEvent is a conversationUpdate about a channel of a team the bot is
// in: eventType channelCreated, channelRenamed or channelDeleted.
func (f *Fake) ChannelEvent(eventType, teamID, teamName, channelID, channelName string) Activity {
	a := f.base("conversationUpdate", teamID)
	a["from"] = map[string]any{"id": "29:someone"}
	a["channelData"] = map[string]any{
		"team":      map[string]any{"id": teamID, "name": teamName},
		"channel":   map[string]any{"id": channelID, "name": channelName},
		"eventType": eventType, "tenant": f.tenant(),
	}
	return a
}

// InstallationUpdate is the installationUpdate for action "add" or "remove"
// in a team.
func (f *Fake) InstallationUpdate(action, teamID string) Activity {
	a := f.base("installationUpdate", teamID)
	a["action"] = action
	a["from"] = map[string]any{"id": "29:someone"}
	a["channelData"] = map[string]any{
		"team": map[string]any{"id": teamID}, "tenant": f.tenant(),
	}
	return a
}

func (f *Fake) clickBase(typ string, from From, at Thread) Activity {
	a := f.base(typ, at.Conversation)
	a["from"] = map[string]any{"id": "29:per-bot-" + from.AadObjectID, "aadObjectId": from.AadObjectID, "name": from.Name}
	a["replyToId"] = at.ActivityID
	a["channelData"] = map[string]any{
		"channel": map[string]any{"id": at.ChannelID}, "tenant": f.tenant(),
		"source": map[string]any{"name": "message"}, "legacy": map[string]any{"replyToId": "1:legacy"},
	}
	if at.ChannelID == "" {
		// A personal (1:1) conversation: no channel, no group.
		a["conversation"] = map[string]any{"isGroup": false, "conversationType": "personal", "tenantId": f.TenantID, "id": at.Conversation}
		a["channelData"] = map[string]any{"tenant": f.tenant(), "source": map[string]any{"name": "message"}}
	}
	return a
}

// ExecuteClick is the invoke an Action.Execute button sends.
func (f *Fake) ExecuteClick(from From, at Thread, verb, requestID, decision string) Activity {
	a := f.clickBase("invoke", from, at)
	a["name"] = "adaptiveCard/action"
	a["value"] = map[string]any{
		"action": map[string]any{
			"type": "Action.Execute", "id": "", "verb": verb,
			"data": map[string]any{"request_id": requestID, "decision": decision},
		},
		"trigger": "manual",
	}
	return a
}

// ExecuteAction is the invoke any Action.Execute button sends: its verb and
// data as the card carried them.
func (f *Fake) ExecuteAction(from From, at Thread, verb string, data map[string]any) Activity {
	a := f.clickBase("invoke", from, at)
	a["name"] = "adaptiveCard/action"
	a["value"] = map[string]any{
		"action":  map[string]any{"type": "Action.Execute", "id": "", "verb": verb, "data": data},
		"trigger": "manual",
	}
	return a
}

// SubmitClick is the message an Action.Submit button (the fallback) sends.
func (f *Fake) SubmitClick(from From, at Thread, requestID, decision string) Activity {
	a := f.clickBase("message", from, at)
	a["value"] = map[string]any{"request_id": requestID, "decision": decision}
	return a
}

func retenant(body []byte, tenant string) ([]byte, error) {
	var a map[string]any
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, err
	}
	if c, ok := a["conversation"].(map[string]any); ok {
		c["tenantId"] = tenant
	}
	if cd, ok := a["channelData"].(map[string]any); ok {
		cd["tenant"] = map[string]any{"id": tenant}
	}
	return json.Marshal(a)
}
