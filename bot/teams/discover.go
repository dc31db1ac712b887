package teams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/infracloudio/msbotbuilder-go/schema"
)

// When the app is added to a team, Teams speaks to the bot in the team's
// General channel only. Its other channels would stay unknown (and could not
// be posted to) until someone wrote in each, so the bot asks the Bot
// Connector for the team's channel list at once.

const (
	// discoverTimeout keeps the listing well inside the 15 s Teams waits
	// for the activity's answer.
	discoverTimeout = 5 * time.Second
	maxTeamChannels = 2000
	maxChannelID    = 512
	maxChannelName  = 256
)

// teamChannel is one entry of a team's channel list.
type teamChannel struct {
	ID   string
	Name string
}

// botAdded reports whether the activity says the app was just added to a
// team: the conversationUpdate listing the bot among membersAdded, or the
// installationUpdate that comes with it.
func botAdded(in *inbound) bool {
	act := &in.Activity
	if in.TeamID == "" {
		return false
	}
	switch act.Type {
	case schema.ConversationUpdate:
		return hasBot(act.MembersAdded, act.Recipient.ID)
	case schema.InstallationUpdate:
		return act.Action == "add" || act.Action == "add-upgrade"
	}
	return false
}

// discoverChannels stores a reference for every channel of the team the bot
// was added to. A failure is logged and otherwise ignored: the General
// channel is stored already, and the others are learned as people write in
// them or when the app is added again.
func (t *Teams) discoverChannels(ctx context.Context, in *inbound) {
	ctx, cancel := context.WithTimeout(ctx, discoverTimeout)
	defer cancel()
	log := t.log.With("team", in.TeamID)
	var raw json.RawMessage
	path := "/v3/teams/" + escapeID(in.TeamID) + "/conversations"
	if err := t.call(ctx, http.MethodGet, in.Activity.ServiceURL, path, nil, &raw); err != nil {
		log.Warn("cannot list the team's channels; only those that send the bot an activity will be known", "err", err)
		return
	}
	chans, perr := parseTeamChannels(raw)
	if perr != nil {
		log.Warn("team channel list has unusable entries; skipped them", "err", perr)
	}
	teamName := in.TeamName
	if teamName == "" {
		if general, err := t.channel(in.TeamID); err == nil && general != nil {
			teamName = general.TeamName
		}
	}
	now := t.cfg.Clock.Now().UTC()
	stored := 0
	for _, c := range chans {
		name := c.Name
		if name == "" && c.ID == in.TeamID {
			name = "General"
		}
		err := t.upsertChannel(Channel{
			TeamID:      in.TeamID,
			TeamName:    teamName,
			ChannelID:   c.ID,
			ChannelName: name,
			ServiceURL:  in.Activity.ServiceURL,
			TenantID:    in.Tenant,
			BotID:       in.Activity.Recipient.ID,
			UpdatedAt:   now,
		})
		if err != nil {
			log.Error("cannot store a channel reference", "channel", c.ID, "err", err)
			continue
		}
		stored++
	}
	log.Info("stored the team's channels", "channels", stored)
}

// parseTeamChannels decodes the Bot Connector's ConversationList,
// {"conversations":[{"id":"19:...","name":"..."}]}. It is pure so it can be
// fuzzed. Entries that are not usable channel ids are left out and named in
// the error, which comes beside the usable ones.
func parseTeamChannels(body []byte) ([]teamChannel, error) {
	var list struct {
		Conversations *[]struct {
			ID   *string `json:"id"`
			Name *string `json:"name"`
		} `json:"conversations"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("team channel list: %w", err)
	}
	if list.Conversations == nil {
		return nil, errors.New("team channel list: conversations is missing")
	}
	entries := *list.Conversations
	if len(entries) > maxTeamChannels {
		return nil, fmt.Errorf("team channel list: %d conversations, more than the %d a team can have", len(entries), maxTeamChannels)
	}
	var out []teamChannel
	var errs []error
	seen := map[string]bool{}
	for i, e := range entries {
		switch {
		case e.ID == nil || *e.ID == "":
			errs = append(errs, fmt.Errorf("conversations[%d].id is missing", i))
		case !strings.HasPrefix(*e.ID, "19:") || len(*e.ID) > maxChannelID || !utf8.ValidString(*e.ID) || strings.IndexFunc(*e.ID, unicode.IsControl) >= 0:
			errs = append(errs, fmt.Errorf("conversations[%d].id %.40q is not a Teams channel id (19:...)", i, *e.ID))
		case seen[*e.ID]:
			errs = append(errs, fmt.Errorf("conversations[%d].id %.40q is listed twice", i, *e.ID))
		default:
			seen[*e.ID] = true
			c := teamChannel{ID: *e.ID}
			if e.Name != nil {
				c.Name = cleanName(*e.Name)
			}
			out = append(out, c)
		}
	}
	return out, errors.Join(errs...)
}

// cleanName makes a team or channel name safe to print in a table: no
// control characters, valid UTF-8, bounded length.
func cleanName(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > maxChannelName {
		s = string([]rune(s)[:maxChannelName-1]) + "…"
	}
	return s
}
