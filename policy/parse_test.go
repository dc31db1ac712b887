package policy_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/teams"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/policy/confnode"
)

// env is a getenv over a fixed map.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// exampleEnv sets every variable examples/approvebot.yaml needs except the
// three optional URLs.
var exampleEnv = map[string]string{
	"PAYMENTS_AGENT_TOKEN":   "pay-0123456789abcdef",
	"DB_AGENT_TOKEN":         "db-0123456789abcdef0",
	"SLACK_BOT_TOKEN":        "xoxb-123-456-abc",
	"SLACK_SIGNING_SECRET":   "8f742231b10e8888abcd99yyyzzz85a5",
	"TEAMS_APP_ID":           "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
	"TEAMS_APP_PASSWORD":     "pw~with.odd:chars#x",
	"TEAMS_TENANT_ID":        "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
	"APPROVEBOT_ADMIN_TOKEN": "admin-0123456789abcdef",
}

const (
	callersY = "callers:\n  - {name: agent, token: 0123456789abcdef0123}\n"
	slackY   = "slack:\n  bot_token: xoxb-1\n  signing_secret: shh\n"
	teamsY   = "teams:\n  app_id: 11111111-2222-3333-4444-555555555555\n  app_password: pw\n  tenant_id: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\n"
	groupsY  = "approvers:\n  ops:\n    slack: {channels: [C0OPS], users: [U0ANN, U0BOB]}\n"
	baseY    = callersY + slackY + groupsY
)

func TestDirectMessagesOnly(t *testing.T) {
	cfg, err := Parse([]byte(callersY+slackY+"approvers:\n  ops:\n    slack: {notify: [dm], users: [U0ANN, ann@company.com]}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := cfg.Approvers["ops"].Sides[slack.Name]; !g.DM || len(g.Channels) != 0 {
		t.Fatalf("ops.slack %+v", g)
	}
}

func TestSocketModeNeedsNoSigningSecret(t *testing.T) {
	cfg, err := Parse([]byte(callersY+"slack:\n  bot_token: xoxb-1\n  socket_mode: true\n  app_token: xapp-1-A1-2-x\n"+groupsY), nil)
	if err != nil {
		t.Fatal(err)
	}
	if slack.ConfigOf(cfg).AppToken == "" || slack.ConfigOf(cfg).AppToken != "xapp-1-A1-2-x" || slack.ConfigOf(cfg).SigningSecret != "" {
		t.Fatalf("slack config %+v", slack.ConfigOf(cfg))
	}
}

func TestExampleParses(t *testing.T) {
	cfg, err := Load("../examples/approvebot.yaml", env(exampleEnv))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := len(cfg.Callers); got != 2 || cfg.Callers[0].Token != exampleEnv["PAYMENTS_AGENT_TOKEN"] ||
		!reflect.DeepEqual(cfg.Callers[1].MayRequest, []string{"high-risk-tools"}) {
		t.Errorf("callers = %+v", cfg.Callers)
	}
	if sec, ok := cfg.Approvers["security"].Side(teams.Name); !ok || !sec.AllowGuests || cfg.Approvers["treasury-ops"].Sides[teams.Name].AllowGuests {
		t.Errorf("security.teams = %+v, want allow_guests", sec)
	}
	if slack.ConfigOf(cfg) == nil || slack.ConfigOf(cfg).APIURL != slack.DefaultAPIURL || slack.ConfigOf(cfg).BotToken != exampleEnv["SLACK_BOT_TOKEN"] || slack.ConfigOf(cfg).ChannelInterval != time.Second {
		t.Errorf("slack = %+v", slack.ConfigOf(cfg))
	}
	wantTeams := &teams.Config{
		AppID:             exampleEnv["TEAMS_APP_ID"],
		AppPassword:       exampleEnv["TEAMS_APP_PASSWORD"],
		TenantID:          exampleEnv["TEAMS_TENANT_ID"],
		OpenIDMetadataURL: teams.DefaultOpenIDMetadataURL,
		TokenURL:          "https://login.microsoftonline.com/aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee/oauth2/v2.0/token",
		ChannelInterval:   teams.DefaultChannelInterval,
	}
	if !reflect.DeepEqual(teams.ConfigOf(cfg), wantTeams) {
		t.Errorf("teams = %+v, want %+v", teams.ConfigOf(cfg), wantTeams)
	}
	if cfg.Admin.Token != exampleEnv["APPROVEBOT_ADMIN_TOKEN"] {
		t.Errorf("admin token not read")
	}
	if len(cfg.Approvers) != 4 || cfg.Approvers["treasury-ops"].Name != "treasury-ops" {
		t.Errorf("approvers = %+v", cfg.Approvers)
	}
	if len(cfg.Routes) != 3 {
		t.Fatalf("routes = %+v", cfg.Routes)
	}
	want := policy.Route{Match: policy.Match{RuleName: "approve-large-transfer", Caller: "payments-agent"}, Approvers: []string{"treasury-ops", "compliance"},
		Quorum: approvebot.Quorum{Mode: approvebot.QuorumAll}, Timeout: 5 * time.Minute, Line: lineOf(t, mustRead(t, "../examples/approvebot.yaml"), "- match: {rule_name: approve-large-transfer, caller: payments-agent}")}
	if !reflect.DeepEqual(cfg.Routes[0], want) {
		t.Errorf("routes[0] = %+v, want %+v", cfg.Routes[0], want)
	}
	if q := cfg.Routes[1].Quorum; q != (approvebot.Quorum{Mode: approvebot.QuorumCount, N: 2}) {
		t.Errorf("routes[1].quorum = %+v", q)
	}
	ch := cfg.Chains["high-risk-tools"]
	if ch.ID != "high-risk-tools" || ch.Version != "3" || !ch.SeparationOfDuties || ch.Timeout != 10*time.Minute || len(ch.Stages) != 2 ||
		ch.Reason != (approvebot.ReasonRule{Deny: approvebot.ReasonRequired, Approve: approvebot.ReasonOptional}) || !ch.ConfirmApprove ||
		ch.Stages[0].Quorum != (approvebot.Quorum{Mode: approvebot.QuorumCount, N: 1}) {
		t.Errorf("chain = %+v", ch)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte(baseY+"lisen: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, nil)
	if err == nil || !strings.HasPrefix(err.Error(), path+": line 9: unknown key \"lisen\"") {
		t.Fatalf("err = %v", err)
	}
	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"), nil)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("err = %v", err)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Load("testdata/minimal.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != policy.DefaultListen || cfg.Store.Path != policy.DefaultStorePath || cfg.Signing.KeyFile != "approvebot-signing.key" ||
		cfg.Signing.Issuer != "approvebot" || cfg.Delivery.Timeout != 60*time.Second || cfg.Admin.Token != "" ||
		slack.ConfigOf(cfg).APIURL != "https://slack.com/api/" || slack.ConfigOf(cfg).ChannelInterval != time.Second || teams.ConfigOf(cfg) != nil ||
		len(cfg.Routes) != 0 || len(cfg.Chains) != 0 {
		t.Errorf("defaults not applied: %+v slack %+v", cfg, slack.ConfigOf(cfg))
	}

	cfg, err = Load("testdata/teams-only.yaml", env(map[string]string{"A_TOKEN": "a-token-of-16-chars", "TEAMS_PASSWORD": "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Signing.KeyFile != "/data/approvebot-signing.key" {
		t.Errorf("key file = %q, want next to the store", cfg.Signing.KeyFile)
	}
	if cfg.Listen != "0.0.0.0:9090" || slack.ConfigOf(cfg) != nil {
		t.Errorf("cfg = %+v", cfg)
	}
	if teams.ConfigOf(cfg).TokenURL != "https://login.microsoftonline.com/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee/oauth2/v2.0/token" || teams.ConfigOf(cfg).OpenIDMetadataURL != teams.DefaultOpenIDMetadataURL {
		t.Errorf("teams defaults = %+v", teams.ConfigOf(cfg))
	}
	if v := cfg.Chains["c1"].Version; v != "1" {
		t.Errorf("version = %q, want the YAML int 1 read as \"1\"", v)
	}
	if q := cfg.Routes[0].Quorum; q.Mode != approvebot.QuorumAny || cfg.Routes[0].Match != (policy.Match{}) {
		t.Errorf("catch-all route = %+v", cfg.Routes[0])
	}
}

func TestEnvExpansion(t *testing.T) {
	doc := callersY + "slack:\n  bot_token: ${BOT}\n  signing_secret: ${SECRET}\n  api_url: ${SLACK_API_URL}\n" + groupsY +
		"signing: {issuer: \"cost-$$5-${ISS}\"}\n"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		secret  string
		apiURL  string
		issuer  string
		wantErr string
	}{
		{name: "set", env: map[string]string{"BOT": "xoxb-a", "SECRET": "plain", "ISS": "x"}, secret: "plain", apiURL: slack.DefaultAPIURL, issuer: "cost-$5-x"},
		{name: "secret with YAML characters", env: map[string]string{"BOT": "xoxb-a", "SECRET": "a: b # c\n- [d]: {e}", "ISS": ""},
			wantErr: "line 5: slack.signing_secret contains spaces or control characters"},
		{name: "secret with colon and hash", env: map[string]string{"BOT": "xoxb-a", "SECRET": "a:b#c'\"&*!|>%@`", "ISS": ""}, secret: "a:b#c'\"&*!|>%@`", apiURL: slack.DefaultAPIURL, issuer: "cost-$5-"},
		{name: "api url set, slash added", env: map[string]string{"BOT": "xoxb-a", "SECRET": "s", "ISS": "", "SLACK_API_URL": "http://127.0.0.1:9/api"}, secret: "s", apiURL: "http://127.0.0.1:9/api/", issuer: "cost-$5-"},
		{name: "api url empty means default", env: map[string]string{"BOT": "xoxb-a", "SECRET": "s", "ISS": "", "SLACK_API_URL": ""}, secret: "s", apiURL: slack.DefaultAPIURL, issuer: "cost-$5-"},
		{name: "unset secret", env: map[string]string{"BOT": "xoxb-a", "ISS": ""}, wantErr: "line 5: slack.signing_secret: environment variable SECRET is not set"},
		{name: "empty secret", env: map[string]string{"BOT": "xoxb-a", "SECRET": "", "ISS": ""}, wantErr: "line 5: slack.signing_secret: environment variable SECRET is set but empty"},
		{name: "unset optional", env: map[string]string{"BOT": "xoxb-a", "SECRET": "s"}, wantErr: "line 10: signing.issuer: environment variable ISS is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(doc), env(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if s := tc.env["SECRET"]; len(s) > 3 && strings.Contains(err.Error(), s) {
					t.Fatalf("error shows the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if slack.ConfigOf(cfg).SigningSecret != tc.secret || slack.ConfigOf(cfg).APIURL != tc.apiURL || cfg.Signing.Issuer != tc.issuer {
				t.Errorf("got secret %q api %q issuer %q", slack.ConfigOf(cfg).SigningSecret, slack.ConfigOf(cfg).APIURL, cfg.Signing.Issuer)
			}
		})
	}
}

func TestAdminTokenFromEnv(t *testing.T) {
	doc := baseY + "admin:\n  token: ${ADMIN}\n"
	cfg, err := Parse([]byte(doc), env(map[string]string{"ADMIN": ""}))
	if err != nil || cfg.Admin.Token != "" {
		t.Fatalf("empty ADMIN should disable admin: %v %+v", err, cfg)
	}
	if _, err := Parse([]byte(doc), env(nil)); err == nil || !strings.Contains(err.Error(), "line 10: admin.token: environment variable ADMIN is not set") {
		t.Fatalf("unset ADMIN: err = %v", err)
	}
	cfg, err = Parse([]byte(doc), env(map[string]string{"ADMIN": "0123456789abcdefXYZ"}))
	if err != nil || cfg.Admin.Token != "0123456789abcdefXYZ" {
		t.Fatalf("err %v cfg %+v", err, cfg)
	}
}

func TestTeamsURLsUnsetMeanDefault(t *testing.T) {
	doc := callersY + teamsY + "  openid_metadata_url: ${OIDC}\n  token_url: ${TOK}\n" +
		"approvers:\n  sec:\n    teams: {channels: [\"19:a@thread.tacv2\"], users: [a@b.c]}\n"
	cfg, err := Parse([]byte(doc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if teams.ConfigOf(cfg).OpenIDMetadataURL != teams.DefaultOpenIDMetadataURL || teams.ConfigOf(cfg).TokenURL != teams.DefaultTokenURL("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee") {
		t.Errorf("teams = %+v", teams.ConfigOf(cfg))
	}
	cfg, err = Parse([]byte(doc), env(map[string]string{"OIDC": "http://127.0.0.1:1/oidc", "TOK": "http://127.0.0.1:1/token"}))
	if err != nil {
		t.Fatal(err)
	}
	if teams.ConfigOf(cfg).OpenIDMetadataURL != "http://127.0.0.1:1/oidc" || teams.ConfigOf(cfg).TokenURL != "http://127.0.0.1:1/token" {
		t.Errorf("teams = %+v", teams.ConfigOf(cfg))
	}
	// Only a value that is exactly ${VAR} falls back: a URL built around an
	// unset variable is a mistake.
	partial := strings.Replace(doc, "${TOK}", "https://${HOST}/token", 1)
	if _, err := Parse([]byte(partial), env(nil)); err == nil || !strings.Contains(err.Error(), "line 8: teams.token_url: environment variable HOST is not set") {
		t.Fatalf("err = %v", err)
	}
}

// lineOf is the 1-based line of the first line of doc containing marker.
func lineOf(t *testing.T, doc, marker string) int {
	t.Helper()
	for i, l := range strings.Split(doc, "\n") {
		if strings.Contains(l, marker) {
			return i + 1
		}
	}
	t.Fatalf("marker %q not in document", marker)
	return 0
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseErrors(t *testing.T) {
	routes := func(r string) string { return baseY + "routes:\n" + r }
	chains := func(c string) string { return baseY + "chains:\n" + c }
	for _, tc := range []struct {
		name   string
		doc    string
		env    map[string]string
		marker string // the line the message must name; "" for none
		want   string
	}{
		{name: "unknown top key", doc: baseY + "lisen: x\n", marker: "lisen", want: `unknown key "lisen" at the top level (want listen, store, callers, signing, admin, delivery, approvers, routes, chains, shutdown_grace, public_url, tls, audit, server, slack, teams, web)`},
		{name: "unknown nested key", doc: callersY + slackY + "approvers:\n  treasury-ops:\n    slack:\n      chanels: [C0X]\n      users: [U0A]\n", marker: "chanels",
			want: `unknown key "chanels" in approvers.treasury-ops.slack (want channels, users, usergroups, notify)`},
		{name: "app token without socket mode", doc: callersY + slackY + "  app_token: xapp-1-x\n" + groupsY, marker: "app_token",
			want: `slack.app_token is only used with slack.socket_mode: true`},
		{name: "socket mode with a bot token as app token", doc: callersY + "slack:\n  bot_token: xoxb-1\n  socket_mode: true\n  app_token: xoxb-2\n" + groupsY, marker: "xoxb-2",
			want: `slack.app_token must be an app-level token (it starts with xapp-`},
		{name: "socket mode without app token", doc: callersY + "slack:\n  bot_token: xoxb-1\n  socket_mode: true\n" + groupsY, marker: "bot_token",
			want: `slack.app_token`},
		{name: "no signing secret over HTTP", doc: callersY + "slack:\n  bot_token: xoxb-1\n" + groupsY, marker: "bot_token",
			want: `slack.signing_secret`},
		{name: "teams notify unknown", doc: callersY + slackY + teamsY + "approvers:\n  ops:\n    teams: {notify: [sms], users: [jane@company.com], channels: [\"19:a@thread.tacv2\"]}\n", marker: "notify",
			want: `approvers.ops.teams.notify: "sms" is not a way to reach approvers (want channels, dm)`},
		{name: "notify unknown", doc: callersY + slackY + "approvers:\n  ops:\n    slack: {notify: [email], channels: [C0OPS], users: [U0ANN]}\n", marker: "notify",
			want: `approvers.ops.slack.notify: "email" is not a way to reach approvers (want channels, dm)`},
		{name: "dm without users", doc: callersY + slackY + "approvers:\n  ops:\n    slack: {notify: [dm], usergroups: [S0OPS]}\n", marker: "notify",
			want: `approvers.ops.slack.notify: dm needs users to message`},
		{name: "channels without notifying them", doc: callersY + slackY + "approvers:\n  ops:\n    slack: {notify: [dm], channels: [C0OPS], users: [U0ANN]}\n", marker: "notify",
			want: `approvers.ops.slack: channels are listed but notify has no channels`},
		{name: "reason deny none", doc: routes("  - match: {}\n    approvers: [ops]\n    reason: {deny: none}\n"), marker: "deny: none",
			want: `routes[0].reason.deny must be required or optional, not "none"`},
		{name: "reason approve required", doc: chains("  c:\n    version: \"1\"\n    stages: [{approvers: [ops]}]\n    reason:\n      approve: required\n"), marker: "approve: required",
			want: `chains.c.reason.approve must be optional or none, not "required"`},
		{name: "reason unknown key", doc: routes("  - match: {}\n    approvers: [ops]\n    reason: {comment: optional}\n"), marker: "comment",
			want: `unknown key "comment" in routes[0].reason (want deny, approve)`},
		{name: "reason not a mapping", doc: routes("  - match: {}\n    approvers: [ops]\n    reason: required\n"), marker: "reason: required",
			want: `routes[0].reason must be a mapping with the keys deny, approve`},
		{name: "confirm_approve not a bool", doc: routes("  - match: {}\n    approvers: [ops]\n    confirm_approve: maybe\n"), marker: "maybe",
			want: `routes[0].confirm_approve must be true or false`},
		{name: "repeated key", doc: baseY + "listen: a:1\nlisten: b:2\n", marker: "b:2", want: `key "listen" at the top level is repeated (first at line 9)`},
		{name: "empty file", doc: "", want: "the configuration is empty"},
		{name: "only comments", doc: "# nothing\n", want: "the configuration is empty"},
		{name: "null document", doc: "~\n", marker: "~", want: "the configuration is empty"},
		{name: "not a mapping", doc: "- a\n", marker: "- a", want: "the configuration must be a mapping"},
		{name: "invalid YAML", doc: baseY + "routes: [\n", want: "invalid YAML"},
		{name: "unquoted variable in flow mapping", doc: "callers:\n  - {name: a, token: ${T}}\n" + slackY + groupsY,
			want: `invalid YAML: did not find expected ',' or '}' (inside {...} or [...], quote a value that uses ${VAR}: token: "${TOKEN}")`},
		{name: "second document", doc: baseY + "---\nlisten: x\n", marker: "---", want: "a second YAML document"},
		{name: "alias", doc: callersY + slackY + "approvers:\n  ops: &g\n    slack: {channels: [C0OPS], users: [U0ANN]}\n  ops2: *g\n", marker: "ops2", want: "YAML aliases (*g) are not supported"},
		{name: "custom tag", doc: baseY + "listen: !env X\n", marker: "!env", want: `YAML tag "!env" is not supported`},
		{name: "no callers", doc: slackY + groupsY, marker: "slack:", want: "callers is missing"},
		{name: "callers not list", doc: "callers: x\n" + slackY + groupsY, marker: "callers", want: "callers must be a list of at least one {name, token}"},
		{name: "caller without token", doc: "callers:\n  - {name: a}\n" + slackY + groupsY, marker: "name: a", want: "callers[0].token is missing"},
		{name: "weak token", doc: "callers:\n  - {name: a, token: short-secret}\n" + slackY + groupsY, marker: "short-secret", want: "callers[0].token: weak token: 12 characters, want at least 16"},
		{name: "duplicate caller", doc: callersY + "  - {name: agent, token: abcdefabcdefabcdef00}\n" + slackY + groupsY, marker: "abcdefabcdef", want: `callers[1].name "agent" is already used at line 2`},
		{name: "shared caller token", doc: callersY + "  - {name: b, token: 0123456789abcdef0123}\n" + slackY + groupsY, marker: "name: b", want: `callers[1].token is the same as caller "agent"'s`},
		{name: "token with newline", doc: "callers:\n  - {name: a, token: \"${T}\"}\n" + slackY + groupsY, env: map[string]string{"T": "0123456789abcdef0123\n"}, marker: "${T}", want: "callers[0].token contains spaces or control characters"},
		{name: "unset token", doc: "callers:\n  - {name: a, token: \"${PAYMENTS_AGENT_TOKEN}\"}\n" + slackY + groupsY, marker: "PAYMENTS", want: "callers[0].token: environment variable PAYMENTS_AGENT_TOKEN is not set"},
		{name: "lone dollar", doc: "callers:\n  - {name: a, token: $TOKEN_WITHOUT_BRACES}\n" + slackY + groupsY, marker: "$TOKEN", want: `callers[0].token: a "$" not followed by "{"`},
		{name: "may_request empty", doc: "callers:\n  - name: a\n    token: 0123456789abcdef0123\n    may_request: []\n" + slackY + groupsY, marker: "may_request", want: "callers[0].may_request is empty: list the approver groups and chains the caller may ask, or remove the key to allow any"},
		{name: "may_request unknown", doc: "callers:\n  - name: a\n    token: 0123456789abcdef0123\n    may_request: [ops,\n      nope]\n" + slackY + groupsY, marker: "nope", want: `callers[0].may_request: "nope" is neither an approver group (known: ops) nor a chain (none are)`},
		{name: "may_request not a list", doc: "callers:\n  - name: a\n    token: 0123456789abcdef0123\n    may_request: ops\n" + slackY + groupsY, marker: "may_request", want: "callers[0].may_request must be a list"},
		{name: "route for a caller that does not exist", doc: routes("  - match: {caller: \"pay*\"}\n    approvers: [ops]\n"), marker: "caller:", want: `routes[0].match.caller: "pay*" matches no caller (known: agent)`},
		{name: "route for a caller to where it may not ask", doc: "callers:\n  - name: a\n    token: 0123456789abcdef0123\n    may_request: [c]\n" + slackY + groupsY +
			"routes:\n  - match: {caller: a}\n    approvers: [ops]\nchains:\n  c:\n    version: \"1\"\n    stages: [{approvers: [ops]}]\n", marker: "caller: a", want: `routes[0] sends caller "a"'s requests to "ops", which its may_request does not list`},
		{name: "allow_guests not a bool", doc: callersY + teamsY + "approvers:\n  x:\n    teams:\n      channels: [\"19:a\"]\n      users: [a@b.c]\n      allow_guests: sometimes\n", marker: "sometimes", want: "approvers.x.teams.allow_guests must be true or false"},
		{name: "no platform", doc: callersY + "approvers:\n  ops:\n    teams: {channels: [\"19:a\"], users: [a@b.c]}\n", marker: "callers:", want: "neither slack, teams nor web is configured"},
		{name: "slack side without slack section", doc: callersY + teamsY + groupsY, marker: "slack: {", want: "approvers.ops.slack: the file has no slack section"},
		{name: "teams side without teams section", doc: baseY + "  sec:\n    teams: {channels: [\"19:a\"], users: [a@b.c]}\n", marker: "teams: {", want: "approvers.sec.teams: the file has no teams section"},
		{name: "slack missing secret", doc: callersY + "slack:\n  bot_token: xoxb-1\n" + groupsY, marker: "bot_token", want: "slack.signing_secret is missing"},
		{name: "slack not a bot token", doc: callersY + "slack:\n  bot_token: xoxp-1\n  signing_secret: s\n" + groupsY, marker: "xoxp", want: "slack.bot_token must be the app's bot token (it starts with xoxb-)"},
		{name: "slack api url not http", doc: callersY + slackY + "  api_url: ftp://x/\n" + groupsY, marker: "ftp", want: "slack.api_url must be an http:// or https:// URL"},
		{name: "teams app id not guid", doc: callersY + strings.Replace(teamsY, "11111111-2222-3333-4444-555555555555", "my-app", 1) + "approvers:\n  s:\n    teams: {channels: [\"19:a\"], users: [a@b.c]}\n", marker: "my-app", want: "teams.app_id must be a GUID"},
		{name: "channels but no approvers", doc: callersY + slackY + "approvers:\n  x:\n    slack: {channels: [C0X]}\n", marker: "C0X", want: "approvers.x.slack: channels set but no users or usergroups: nobody could approve from Slack"},
		{name: "approvers but no channels", doc: callersY + slackY + "approvers:\n  x:\n    slack: {users: [U0X]}\n", marker: "U0X", want: "approvers.x.slack: users or usergroups set but no channels: the request would never be shown on Slack"},
		{name: "teams channels but no users", doc: callersY + teamsY + "approvers:\n  x:\n    teams: {channels: [\"19:a\"]}\n", marker: "19:a", want: "approvers.x.teams: channels set but no users: nobody could approve from Teams"},
		{name: "group names nobody", doc: callersY + slackY + "approvers:\n  x: {}\n", marker: "x: {}", want: "approvers.x names nobody who may approve"},
		{name: "empty side", doc: callersY + slackY + "approvers:\n  x:\n    slack: {}\n", marker: "slack: {}", want: "approvers.x.slack is empty"},
		{name: "no approvers", doc: callersY + slackY, marker: "callers", want: "approvers is missing"},
		{name: "channel name not id", doc: callersY + slackY + "approvers:\n  x:\n    slack:\n      channels: ['#ops']\n      users: [U0A]\n", marker: "#ops", want: `approvers.x.slack.channels: "#ops" is a channel name; give its ID instead`},
		{name: "usergroup not S", doc: callersY + slackY + "approvers:\n  x:\n    slack:\n      channels: [C0X]\n      usergroups: [U0ABC]\n", marker: "U0ABC", want: `approvers.x.slack.usergroups: "U0ABC" is not a user group ID`},
		{name: "slack user", doc: callersY + slackY + "approvers:\n  x:\n    slack:\n      channels: [C0X]\n      users: [jane]\n", marker: "jane", want: `approvers.x.slack.users: "jane" is neither a Slack user ID`},
		{name: "teams user", doc: callersY + teamsY + "approvers:\n  x:\n    teams:\n      channels: [\"19:a\"]\n      users: [jane]\n", marker: "jane", want: `approvers.x.teams.users: "jane" is neither an Entra object ID (a GUID) nor an email or UPN`},
		{name: "teams channel", doc: callersY + teamsY + "approvers:\n  x:\n    teams:\n      channels: [general]\n      users: [a@b.c]\n", marker: "general", want: `approvers.x.teams.channels: "general" is not a Teams channel ID`},
		{name: "listed twice", doc: callersY + slackY + "approvers:\n  x:\n    slack:\n      channels: [C0X]\n      users: [U0A,\n        U0A]\n", marker: "  U0A]", want: `approvers.x.slack.users lists "U0A" twice (first at line 10)`},
		{name: "line after a repeated value", doc: callersY + slackY + "approvers:\n  x:\n    slack:\n      channels: [C0X]\n      users: [U0A,\n        U0A,\n        jane]\n", marker: "jane", want: `approvers.x.slack.users: "jane" is neither`},
		{name: "route unknown group", doc: routes("  - match: {rule_name: r}\n    approvers: [ops, nope]\n"), marker: "nope", want: `routes[0].approvers: group "nope" not defined under approvers (known: ops)`},
		{name: "route unknown chain", doc: routes("  - match: {rule_name: r}\n    chain: nope\n"), marker: "nope", want: `routes[0].chain: chain "nope" is not defined under chains (none are)`},
		{name: "route both", doc: chains("  c: {version: \"1\", stages: [{approvers: [ops]}]}\n") + "routes:\n  - match: {rule_name: r}\n    approvers: [ops]\n    chain: c\n", marker: "match: {rule_name: r}", want: "routes[0] sets both approvers and chain: keep exactly one"},
		{name: "route neither", doc: routes("  - match: {rule_name: r}\n    timeout: 1m\n"), marker: "match:", want: "routes[0] routes nowhere: set approvers (a list of groups) or chain"},
		{name: "route quorum with chain", doc: chains("  c: {version: \"1\", stages: [{approvers: [ops]}]}\n") + "routes:\n  - chain: c\n    quorum: all\n", marker: "quorum: all", want: "routes[0].quorum applies to approvers, not to a chain"},
		{name: "quorum zero", doc: routes("  - approvers: [ops]\n    quorum: 0\n"), marker: "quorum: 0", want: "routes[0].quorum must be at least 1, not 0"},
		{name: "quorum negative", doc: routes("  - approvers: [ops]\n    quorum: -2\n"), marker: "quorum: -2", want: "routes[0].quorum must be at least 1, not -2"},
		{name: "quorum word", doc: routes("  - approvers: [ops]\n    quorum: most\n"), marker: "most", want: `routes[0].quorum must be any, all or a number of approvals such as 2, not "most"`},
		{name: "impossible quorum", doc: routes("  - approvers: [ops]\n    quorum: 3\n"), marker: "quorum: 3", want: "routes[0].quorum: 3 approvals needed but ops list only 2 distinct people and no usergroups: the quorum could never be met"},
		{name: "impossible all", doc: callersY + slackY + "approvers:\n  a:\n    slack: {channels: [C0A], users: [U0X]}\n  b:\n    slack: {channels: [C0B], users: [U0X]}\nchains:\n  c:\n    version: \"1\"\n    stages:\n      - approvers: [a, b]\n        quorum: all\n",
			marker: "quorum: all", want: "chains.c.stages[0].quorum: all needs a different person for each of 2 groups but a, b list only 1 distinct people"},
		{name: "all with no groups", doc: routes("  - approvers: []\n    quorum: all\n"), marker: "approvers: []", want: "routes[0]: approvers or chain is empty"},
		{name: "bare integer timeout", doc: routes("  - approvers: [ops]\n    timeout: 90\n"), marker: "timeout: 90", want: `routes[0].timeout: 90 has no unit: write a duration with units like "90s" or "5m"`},
		{name: "bad duration", doc: routes("  - approvers: [ops]\n    timeout: soon\n"), marker: "soon", want: `routes[0].timeout: "soon" is not a duration`},
		{name: "timeout over a day", doc: routes("  - approvers: [ops]\n    timeout: 25h\n"), marker: "25h", want: "routes[0].timeout may be at most 24h, not 25h"},
		{name: "timeout zero", doc: routes("  - approvers: [ops]\n    timeout: 0s\n"), marker: "0s", want: "routes[0].timeout must be more than 0, not 0s"},
		{name: "delivery bare int", doc: baseY + "delivery: {timeout: 60}\n", marker: "delivery", want: `delivery.timeout: 60 has no unit`},
		{name: "bad glob", doc: routes("  - match: {rule_name: \"a[\"}\n    approvers: [ops]\n"), marker: "a[", want: `routes[0].match.rule_name: "a[" is not a valid pattern`},
		{name: "empty match value", doc: routes("  - match: {rule_name: \"\"}\n    approvers: [ops]\n"), marker: "rule_name", want: "routes[0].match.rule_name is empty"},
		{name: "mixed match keys", doc: routes("  - match: {rule_name: r, operation: o}\n    approvers: [ops]\n"), marker: "rule_name", want: "routes[0].match mixes legacy keys (rule_name) with schema 1.0 keys (operation)"},
		{name: "unknown match key", doc: routes("  - match: {rule: r}\n    approvers: [ops]\n"), marker: "rule: r", want: `unknown key "rule" in routes[0].match (want rule_name, policy_name, action, agent_id, approval_chain_id, operation, target_resource, caller)`},
		{name: "route after catch-all", doc: routes("  - approvers: [ops]\n  - match: {rule_name: r}\n    approvers: [ops]\n"), marker: "rule_name: r", want: "routes[1] can never match: the route at line 10 above matches every request"},
		{name: "stage unknown group", doc: chains("  c:\n    version: \"1\"\n    stages:\n      - approvers: [sec]\n"), marker: "[sec]", want: `chains.c.stages[0].approvers: group "sec" not defined under approvers (known: ops)`},
		{name: "stage without approvers", doc: chains("  c:\n    version: \"1\"\n    stages:\n      - quorum: any\n"), marker: "quorum: any", want: "chains.c.stages[0].approvers: list at least one approver group"},
		{name: "chain without version", doc: chains("  c:\n    stages: [{approvers: [ops]}]\n"), marker: "stages:", want: "chains.c.version is missing"},
		{name: "chain without stages", doc: chains("  c:\n    version: \"2\"\n"), marker: "version", want: "chains.c.stages is missing"},
		{name: "chain empty stages", doc: chains("  c:\n    version: \"2\"\n    stages: []\n"), marker: "stages: []", want: "chains.c.stages must be a list of at least one"},
		{name: "chain bad bool", doc: chains("  c:\n    version: \"2\"\n    stages: [{approvers: [ops]}]\n    separation_of_duties: maybe\n"), marker: "maybe", want: "chains.c.separation_of_duties must be true or false"},
		{name: "admin weak", doc: baseY + "admin: {token: abc}\n", marker: "admin", want: "admin.token: weak token: 3 characters, want at least 16"},
		{name: "admin is a caller", doc: baseY + "admin: {token: 0123456789abcdef0123}\n", marker: "admin", want: `admin.token is also caller "agent"'s token`},
		{name: "bad listen", doc: baseY + "listen: localhost\n", marker: "listen", want: "listen must be host:port"},
		{name: "scalar where list", doc: callersY + slackY + "approvers:\n  x:\n    slack: {channels: C0X, users: [U0A]}\n", marker: "C0X", want: "approvers.x.slack.channels must be a list, e.g. [a, b], not a single value"},
		{name: "list where value", doc: baseY + "store: {path: [a]}\n", marker: "store", want: "store.path must be a single value, not a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), env(tc.env))
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			want := tc.want
			if tc.marker != "" {
				want = fmt.Sprintf("line %d: %s", lineOf(t, tc.doc, tc.marker), tc.want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, want)
			}
		})
	}
}

func TestParseReportsEveryProblemInLineOrder(t *testing.T) {
	doc := "callers:\n  - {name: a, token: short}\nlisen: x\napprovers:\n  x:\n    slack: {channels: [C0X]}\n"
	_, err := Parse([]byte(doc), nil)
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		"line 1: neither slack, teams nor web is configured",
		"line 2: callers[0].token: weak token",
		"line 3: unknown key \"lisen\"",
		"line 6: approvers.x.slack: the file has no slack section",
		"line 6: approvers.x.slack: channels set but no users or usergroups",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d problems:\n%v", len(lines), err)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, lines[i], want[i])
		}
	}
}

func TestUnknownKeyValueIsNotExpanded(t *testing.T) {
	// The unknown key is the problem; its ${VAR} must not add noise.
	_, err := Parse([]byte(baseY+"lisen: ${NOT_SET}\n"), nil)
	if err == nil || strings.Contains(err.Error(), "NOT_SET") || !strings.Contains(err.Error(), `unknown key "lisen"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestTooManyProblemsAreCut(t *testing.T) {
	_, err := Parse([]byte(baseY+strings.Repeat("x: 1\n", 1)+"routes:\n"+strings.Repeat("  - {approvers: [nope]}\n", 80)), nil)
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	// 1 unknown key, 80 unknown groups, 79 routes behind a catch-all.
	if len(lines) != confnode.MaxProblems+1 || lines[confnode.MaxProblems] != "... and 110 more problems" {
		t.Fatalf("got %d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

func TestMistakesFile(t *testing.T) {
	_, err := Load("testdata/mistakes.yaml", nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"testdata/mistakes.yaml: line 2: listen must be host:port",
		"testdata/mistakes.yaml: line 4: callers[0].token: weak token",
		"testdata/mistakes.yaml: line 5: callers[1].name \"a\" is already used at line 4",
		"testdata/mistakes.yaml: line 5: callers[1].token: environment variable UNSET_TOKEN is not set",
		"testdata/mistakes.yaml: line 7: slack.signing_secret is missing",
		"testdata/mistakes.yaml: line 7: slack.bot_token must be the app's bot token",
		"testdata/mistakes.yaml: line 8: slack.api_url must be an http:// or https:// URL",
		"testdata/mistakes.yaml: line 9: slack.channel_interval: 5 has no unit",
		"testdata/mistakes.yaml: line 12: unknown key \"chanels\" in approvers.ops.slack",
		"testdata/mistakes.yaml: line 12: approvers.ops.slack.users lists \"U0A\" twice",
		"testdata/mistakes.yaml: line 13: approvers.empty names nobody who may approve",
		"testdata/mistakes.yaml: line 15: routes[0].match.rule_name: \"a[\" is not a valid pattern",
		"testdata/mistakes.yaml: line 15: routes[0].match mixes legacy keys (rule_name) with schema 1.0 keys (operation)",
		"testdata/mistakes.yaml: line 16: routes[0].approvers: group \"ghost\" not defined under approvers",
		"testdata/mistakes.yaml: line 22: chains.c.version must be a version such as \"3\", not true",
		"testdata/mistakes.yaml: line 19: routes[1].quorum applies to approvers, not to a chain",
		"testdata/mistakes.yaml: line 18: routes[1].chain: chain \"nope\" is not defined under chains (known: c)",
		"testdata/mistakes.yaml: line 24: chains.c.stages[0].quorum must be at least 1, not 0",
		"testdata/mistakes.yaml: line 24: chains.c.stages[0].approvers: list at least one approver group",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%v", err)
	}
}
