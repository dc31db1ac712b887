package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/teams"
	"github.com/approvebot/approvebot/policy"
)

// agtChain is AGT's ApprovalChain (agentmesh.governance.approval_protocol.
// coordinator: ApprovalChain and ApprovalStage), as JSON.
type agtChain struct {
	ChainID string     `json:"chain_id"`
	Version string     `json:"version"`
	Stages  []agtStage `json:"stages"`
}

type agtStage struct {
	StageIndex        int      `json:"stage_index"`
	AllowedIdentities []string `json:"allowed_identities"`
	AllowedRoles      []string `json:"allowed_roles"`
	Required          bool     `json:"required"`
}

func cmdAgt(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		return helpText(groupHelp["agt"])
	}
	if len(args) == 0 || args[0] != "chain" {
		return usageError("agt needs a subcommand: chain")
	}
	fs := flag.NewFlagSet("agt chain", flag.ContinueOnError)
	id := fs.String("chain", "", "the id of a chain in the config's chains section")
	cfg, _, err := loadConfig(fs, args[1:], getenv, stderr)
	if err != nil {
		return err
	}
	if *id == "" {
		return usageError("agt chain needs --chain ID")
	}
	out, err := agtChainFor(ctx, cfg, *id, stderr)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}

// agtChainFor builds the AGT chain that accepts approvebot's answers for
// chain id. AGT's govern() records an approvebot answer as one vote at its
// stage 0, and approvebot answers with the approver whose vote resolved the
// request: one of its final stage's. So the AGT chain has one stage, whose
// identities are the approver strings approvebot can return for that final
// stage's members. Warnings go to warn.
func agtChainFor(ctx context.Context, cfg *policy.Config, id string, warn io.Writer) (*agtChain, error) {
	ch, ok := cfg.Chains[id]
	if !ok {
		known := make([]string, 0, len(cfg.Chains))
		for k := range cfg.Chains {
			known = append(known, k)
		}
		sort.Strings(known)
		if len(known) == 0 {
			return nil, fmt.Errorf("no chain %q: the config has no chains section", id)
		}
		return nil, fmt.Errorf("no chain %q in the config; its chains are: %s", id, strings.Join(known, ", "))
	}
	if len(ch.Stages) == 0 {
		return nil, fmt.Errorf("chain %q has no stages", id)
	}
	final := ch.Stages[len(ch.Stages)-1]
	if len(ch.Stages) > 1 {
		fmt.Fprintf(warn, "note: chain %q has %d stages; approvebot runs them and answers with the approver whose vote resolved the request, "+
			"one of the final stage's (%s), so AGT's chain has one stage of those approvers\n", id, len(ch.Stages), strings.Join(final.Approvers, ", "))
	}

	r := &resolver{cfg: cfg, warn: warn}
	ids := map[string]bool{}
	for _, name := range final.Approvers {
		g, ok := cfg.Approvers[name]
		if !ok {
			return nil, fmt.Errorf("chain %q names approver group %q, which is not configured", id, name)
		}
		got, err := r.group(ctx, g)
		if err != nil {
			return nil, err
		}
		for _, s := range got {
			ids[s] = true
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("no approver of chain %q's final stage can be listed ahead of a click, so an AGT chain would deny every request: "+
			"list them by email in approvers.<group>.slack.users or .teams.users", id)
	}
	list := make([]string, 0, len(ids))
	for s := range ids {
		list = append(list, s)
	}
	sort.Strings(list)
	return &agtChain{ChainID: id, Version: ch.Version, Stages: []agtStage{{
		StageIndex: 0, AllowedIdentities: list, AllowedRoles: []string{}, Required: true,
	}}}, nil
}

// resolver finds the approver string approvebot returns for each listed
// member, as bot/slack and bot/teams identify a clicker.
type resolver struct {
	cfg   *policy.Config
	warn  io.Writer
	slack *slack.Slack
}

func (r *resolver) group(ctx context.Context, g approvebot.Group) ([]string, error) {
	var out []string
	if s, ok := g.Side(slack.Name); ok {
		for _, u := range s.Users {
			got, err := r.slackUser(ctx, g.Name, u)
			if err != nil {
				return nil, err
			}
			out = append(out, got...)
		}
		for _, ug := range s.Groups {
			fmt.Fprintf(r.warn, "warning: group %s: members of Slack user group %s are known only when they click; they are not listed, "+
				"and AGT will refuse their approvals: list them in approvers.%s.slack.users\n", g.Name, ug, g.Name)
		}
	}
	if s, ok := g.Side(teams.Name); ok {
		for _, u := range s.Users {
			out = append(out, r.teamsUser(g.Name, u)...)
		}
	}
	return out, nil
}

// emails lists an email as listed and, when different, in lower case: the
// platforms usually report it so, approvebot compares emails without
// regard to case, and AGT compares identities exactly.
func emails(e string) []string {
	if l := strings.ToLower(e); l != e {
		return []string{e, l}
	}
	return []string{e}
}

// slackUser: a member listed by email is returned as that email (the one
// Slack reports for the clicker). One listed by user id is returned as the
// email Slack has for them, or slack:<team>/<user> when it has none, so
// Slack is asked.
func (r *resolver) slackUser(ctx context.Context, group, u string) ([]string, error) {
	if strings.Contains(u, "@") {
		return emails(u), nil
	}
	if r.slack == nil {
		sc := slack.ConfigOf(r.cfg)
		if sc == nil {
			return nil, fmt.Errorf("group %s lists Slack user %s, but the config has no slack section to ask Slack who that is", group, u)
		}
		s, err := slack.New(slack.Config{
			BotToken: sc.BotToken, SigningSecret: sc.SigningSecret, AppToken: sc.AppToken, APIURL: sc.APIURL,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			return nil, fmt.Errorf("slack: %w", err)
		}
		r.slack = s
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if r.slack.TeamID() == "" {
		if err := r.slack.Check(ctx); err != nil {
			return nil, fmt.Errorf("group %s lists Slack user %s: approvebot reports them by the email Slack has for them, and cannot ask Slack: %w "+
				"(list them by email instead, or run this where Slack is reachable)", group, u, err)
		}
	}
	who, err := r.slack.Identify(ctx, approvebot.Approver{Platform: slack.Name, Workspace: r.slack.TeamID(), UserID: u}, approvebot.MessageRef{}, nil)
	if errors.Is(err, approvebot.ErrIneligible) {
		fmt.Fprintf(r.warn, "warning: group %s: Slack user %s may not approve (%v); not listed\n", group, u, err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("group %s lists Slack user %s: cannot ask Slack who that is: %w (list them by email instead)", group, u, err)
	}
	if who.Email == "" {
		fmt.Fprintf(r.warn, "note: group %s: Slack user %s has no email in Slack; approvebot reports them as %s\n", group, u, who.Principal())
	}
	return []string{who.Principal()}, nil
}

// teamsUser: approvebot reports a Teams clicker by the UPN the team's
// roster gives (its email when there is none), and as teams:<tenant>/<object
// id> when the roster gives neither. Nothing of that can be asked ahead of
// a click, so a listed address is taken to be the UPN, with a reminder.
func (r *resolver) teamsUser(group, u string) []string {
	if strings.Contains(u, "@") {
		fmt.Fprintf(r.warn, "note: group %s: Teams user %s is listed by address; approvebot reports Teams approvers by their UPN, "+
			"so this must be the UPN (where a person's email differs from it, list the UPN)\n", group, u)
		return emails(u)
	}
	tenant := "<tenant>"
	if tc := teams.ConfigOf(r.cfg); tc != nil && tc.TenantID != "" {
		tenant = tc.TenantID
	}
	principal := approvebot.Approver{Platform: teams.Name, Workspace: tenant, UserID: u}.Principal()
	fmt.Fprintf(r.warn, "warning: group %s: Teams user %s is listed by object id; approvebot reports them by the email or UPN the team's roster gives "+
		"when they click, which cannot be known here, and as %s only when the roster gives neither: list them by email or UPN\n", group, u, principal)
	return []string{principal}
}
