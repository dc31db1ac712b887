package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	goslack "github.com/slack-go/slack"
)

// Inspector answers an operator's questions about a Slack app before the
// service runs (approvebot doctor): what the token may do, whether the bot
// is in a channel, whether a listed person or user group exists. Errors are
// Slack's own, unclassified, so the operator reads what Slack said;
// ErrorCode picks out its code.
type Inspector struct {
	api    *goslack.Client
	hc     *http.Client
	apiURL string
	token  string
}

// NewInspector calls Slack's Web API at apiURL (ending in "/", as
// Config.APIURL after its default) with the bot token, through hc.
func NewInspector(botToken, apiURL string, hc *http.Client) *Inspector {
	return &Inspector{
		api:    goslack.New(botToken, goslack.OptionAPIURL(apiURL), goslack.OptionHTTPClient(hc)),
		hc:     hc,
		apiURL: apiURL,
		token:  botToken,
	}
}

// AuthTest calls auth.test and returns the scopes Slack lists for the token
// (nil when it lists none) and the workspace's name. slack-go does not
// expose the X-OAuth-Scopes header, so this one call is made directly.
func (i *Inspector) AuthTest(ctx context.Context) (scopes []string, team string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, i.apiURL+"auth.test", strings.NewReader(url.Values{}.Encode()))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Authorization", "Bearer "+i.token)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := i.hc.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	var body struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
		Team  string `json:"team"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return nil, "", fmt.Errorf("auth.test answered HTTP %d without Slack's JSON: %w", resp.StatusCode, err)
	}
	if !body.OK {
		return nil, "", fmt.Errorf("auth.test: %s", body.Error)
	}
	for s := range strings.SplitSeq(resp.Header.Get("X-OAuth-Scopes"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			scopes = append(scopes, s)
		}
	}
	return scopes, body.Team, nil
}

// ChannelState is what conversations.info says of a channel to the bot.
type ChannelState struct {
	Name     string
	Member   bool // the bot is in it
	Archived bool
}

// Channel calls conversations.info for the channel id.
func (i *Inspector) Channel(ctx context.Context, id string) (ChannelState, error) {
	info, err := i.api.GetConversationInfoContext(ctx, &goslack.GetConversationInfoInput{ChannelID: id})
	if err != nil {
		return ChannelState{}, err
	}
	return ChannelState{Name: info.Name, Member: info.IsMember, Archived: info.IsArchived}, nil
}

// PersonState is what Slack's directory says of a listed approver.
type PersonState struct {
	UserID  string
	Deleted bool // deactivated
	Bot     bool
}

// Person looks up who (an email, through users.lookupByEmail, or a user id,
// through users.info).
func (i *Inspector) Person(ctx context.Context, who string) (PersonState, error) {
	var user *goslack.User
	var err error
	if strings.Contains(who, "@") {
		user, err = i.api.GetUserByEmailContext(ctx, who)
	} else {
		user, err = i.api.GetUserInfoContext(ctx, who)
	}
	if err != nil {
		return PersonState{}, err
	}
	return PersonState{UserID: user.ID, Deleted: user.Deleted, Bot: user.IsBot}, nil
}

// UsergroupMembers calls usergroups.users.list for the user group id.
func (i *Inspector) UsergroupMembers(ctx context.Context, id string) ([]string, error) {
	return i.api.GetUserGroupMembersContext(ctx, id)
}

// ErrorCode is the error code of a Slack API answer ("channel_not_found"),
// or "" for other errors.
func ErrorCode(err error) string {
	var se goslack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}
