package deploy

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot/slack/slackfake"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

const monitoringDir = "../manifests/monitoring"

// series is what a scrape of /metrics showed: for each sample name, its
// label names and the values seen for each. A label value the scrape did not
// show counts too when the metric's help text names it (as in "by result
// (written, failed)"): some values only appear on failures a test cannot
// cause, such as a checkpoint file that stops being writable.
type series map[string]map[string]map[string]bool

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = []string{"job", "instance"}

// scrapeExercised starts the real server, makes it resolve requests every
// way the rules and the dashboard look for (approved with a counted click,
// a refused click, denied, no route, undeliverable, timed out, a failed
// chat call), and scrapes /metrics.
func scrapeExercised(t *testing.T) series {
	t.Helper()
	dir := t.TempDir()
	const token = "monitoring-agent-token-0123456789"
	env := map[string]string{
		"SLACK_BOT_TOKEN":      "xoxb-monitoring-test",
		"SLACK_SIGNING_SECRET": "0123456789abcdef0123456789abcdef",
		"AGENT_TOKEN":          token,
		"ADMIN_TOKEN":          "monitoring-admin-token-0123456789",
	}
	config := fmt.Sprintf(`listen: 127.0.0.1:0
store:
  path: %s/approvebot.db
callers:
  - name: agent
    token: ${AGENT_TOKEN}
slack:
  bot_token: ${SLACK_BOT_TOKEN}
  signing_secret: ${SLACK_SIGNING_SECRET}
  api_url: ${SLACK_API_URL}
  channel_interval: 0s
admin:
  token: ${ADMIN_TOKEN}
delivery:
  timeout: 2s
approvers:
  treasury-ops:
    slack:
      channels: [C0TREASURY]
      users: [U0JANE]
  gone:
    slack:
      channels: [C0GONE]
      users: [U0JANE]
`, dir)
	s := startServer(t, config, env)
	s.slack.AddUser("U0JANE", "Jane", "jane@example.com")
	s.slack.AddUser("U0MALLORY", "Mallory", "mallory@example.com")
	s.slack.FailChannel("chat.postMessage", "C0GONE", time.Hour, slackfake.SlackError("channel_not_found"))

	id := func(code int, m map[string]any) string {
		t.Helper()
		if code != http.StatusAccepted && code != http.StatusOK { // final at once: 200
			t.Fatalf("submit: %d %v\n%s", code, m, s.logs)
		}
		return m["approval_request_id"].(string)
	}
	approved := id(s.legacy(token, "r", []string{"treasury-ops"}, "respond-async"))
	s.click("U0JANE", "C0TREASURY", "approve", approved)
	denied := id(s.legacy(token, "r", []string{"treasury-ops"}, "respond-async"))
	s.click("U0MALLORY", "C0TREASURY", "approve", denied)
	s.click("U0JANE", "C0TREASURY", "deny", denied)
	noRoute := id(s.legacy(token, "r", []string{"nobody"}, "respond-async"))
	undeliverable := id(s.legacy(token, "r", []string{"gone"}, "respond-async"))
	timedOut := id(s.legacy(token, "r", []string{"treasury-ops"}, "respond-async, wait=1"))
	for rid, want := range map[string]string{approved: "approved", denied: "denied", noRoute: "no_route", undeliverable: "undeliverable", timedOut: "timed_out"} {
		if got := s.final(token, rid)["status"]; got != want {
			t.Fatalf("%s: %v, want %s\n%s", rid, got, want, s.logs)
		}
	}

	resp, err := client.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	tp := expfmt.NewTextParser(model.UTF8Validation)
	families, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	out := series{}
	add := func(name string, labels []*dto.LabelPair, extra ...string) {
		if out[name] == nil {
			out[name] = map[string]map[string]bool{}
		}
		for _, l := range labels {
			if out[name][l.GetName()] == nil {
				out[name][l.GetName()] = map[string]bool{}
			}
			out[name][l.GetName()][l.GetValue()] = true
		}
		for _, e := range extra {
			if out[name][e] == nil {
				out[name][e] = map[string]bool{}
			}
		}
	}
	helpValues := regexp.MustCompile(`([a-z_]+) \(([a-z_, ]+)\)`)
	for name, f := range families {
		for _, m := range f.Metric {
			// "by <label> (<value>, <value>)" in the help text names values.
			var named []*dto.LabelPair
			for _, hv := range helpValues.FindAllStringSubmatch(f.GetHelp(), -1) {
				if !slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetName() == hv[1] }) {
					continue
				}
				for _, v := range strings.Split(hv[2], ",") {
					n, v := hv[1], strings.TrimSpace(v)
					named = append(named, &dto.LabelPair{Name: &n, Value: &v})
				}
			}
			m.Label = append(m.Label, named...)
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", m.Label, "le")
				add(name+"_sum", m.Label)
				add(name+"_count", m.Label)
			case dto.MetricType_SUMMARY:
				add(name, m.Label, "quantile")
				add(name+"_sum", m.Label)
				add(name+"_count", m.Label)
			default:
				add(name, m.Label)
			}
		}
	}
	return out
}

// checkExpr parses a PromQL expression and names every metric, label or
// label value it uses that the scrape did not show.
func checkExpr(expr string, have series) []string {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	labelsOf := func(vs *parser.VectorSelector) (string, map[string]map[string]bool, bool) {
		name := vs.Name
		if name == "up" { // Prometheus' own series for each target
			return name, map[string]map[string]bool{}, true
		}
		l, ok := have[name]
		return name, l, ok
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			name, labels, ok := labelsOf(n)
			if name == "" {
				problems = append(problems, "a selector without a metric name: "+n.String())
				return nil
			}
			if !ok {
				problems = append(problems, "metric "+name+" does not exist")
				return nil
			}
			for _, m := range n.LabelMatchers {
				if m.Name == model.MetricNameLabel || slices.Contains(targetLabels, m.Name) {
					continue
				}
				values, ok := labels[m.Name]
				if !ok {
					problems = append(problems, fmt.Sprintf("%s has no label %s", name, m.Name))
				} else if m.Type.String() == "=" && !values[m.Value] {
					problems = append(problems, fmt.Sprintf("%s never has %s=%q (seen: %v)", name, m.Name, m.Value, keys(values)))
				}
			}
		case *parser.AggregateExpr:
			if n.Without {
				return nil
			}
			parser.Inspect(n.Expr, func(c parser.Node, _ []parser.Node) error {
				if vs, ok := c.(*parser.VectorSelector); ok {
					name, labels, ok := labelsOf(vs)
					for _, g := range n.Grouping {
						if _, has := labels[g]; ok && !has && !slices.Contains(targetLabels, g) {
							problems = append(problems, fmt.Sprintf("%s is grouped by %s, a label it does not have", name, g))
						}
					}
				}
				return nil
			})
		}
		return nil
	})
	return problems
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// grafanaVars stands in for the dashboard's variables so its queries parse
// as PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "${job}", "approvebot", "$job", "approvebot")

func TestMonitoringReferencesOnlyMetricsThatExist(t *testing.T) {
	have := scrapeExercised(t)

	// Alert rules, with Prometheus' own rule file parser.
	rulesFile := filepath.Join(monitoringDir, "approvebot-alerts.yaml")
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("%s: %v", rulesFile, err)
	}
	if groups == nil {
		t.FailNow()
	}
	used := map[string]bool{}
	nRules := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			nRules++
			for _, p := range checkExpr(r.Expr, have) {
				t.Errorf("%s: alert %s: %s", rulesFile, r.Alert, p)
			}
			markUsed(r.Expr, used)
			if r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
				t.Errorf("%s: alert %s needs a summary and a severity", rulesFile, r.Alert)
			}
		}
	}
	if nRules < 5 {
		t.Errorf("%s has %d rules", rulesFile, nRules)
	}

	// The dashboard: every target's expression and every variable query.
	dashFile := filepath.Join(monitoringDir, "approvebot-dashboard.json")
	raw, err := os.ReadFile(dashFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string            `json:"title"`
		UID        string            `json:"uid"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashFile, err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("%s: no title, uid or panels", dashFile)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, p := range dash.Panels {
		var v any
		_ = json.Unmarshal(p, &v)
		walk(v)
	}
	if len(exprs) < len(dash.Panels) {
		t.Errorf("%s: %d expressions for %d panels", dashFile, len(exprs), len(dash.Panels))
	}
	for _, e := range exprs {
		for _, p := range checkExpr(grafanaVars.Replace(e), have) {
			t.Errorf("%s: %q: %s", dashFile, e, p)
		}
		markUsed(e, used)
	}
	labelValues := regexp.MustCompile(`^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	for _, v := range dash.Templating.List {
		q, _ := v.Query.(string)
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("%s: variable %s: query %q is not label_values(metric, label)", dashFile, v.Name, q)
			continue
		}
		if _, ok := have[m[1]]; !ok {
			t.Errorf("%s: variable %s: metric %s does not exist", dashFile, v.Name, m[1])
		}
		if !slices.Contains(targetLabels, m[2]) {
			if _, ok := have[m[1]][m[2]]; !ok {
				t.Errorf("%s: variable %s: %s has no label %s", dashFile, v.Name, m[1], m[2])
			}
		}
	}

	// Metrics approvebot has that neither file shows (not an error: a new
	// metric need not be on the dashboard at once).
	var unused []string
	for name := range have {
		if strings.HasPrefix(name, "approvebot_") && !used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")] && !used[name] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Logf("approvebot metrics in neither the rules nor the dashboard: %v", unused)
	}
}

func markUsed(expr string, used map[string]bool) {
	for _, m := range regexp.MustCompile(`approvebot_[a-z_]+`).FindAllString(expr, -1) {
		used[m] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			used[strings.TrimSuffix(m, suffix)] = true
		}
	}
}

// The check finds what it is for: a metric that does not exist, a label it
// lacks, a label value never seen, grouping by a missing label.
func TestCheckExprFindsMistakes(t *testing.T) {
	have := series{"approvebot_clicks_total": {"platform": {"slack": true}, "result": {"counted": true, "refused": true}}}
	for expr, want := range map[string]string{
		`rate(approvebot_click_total[5m])`:                               "metric approvebot_click_total does not exist",
		`approvebot_clicks_total{outcome="refused"}`:                     "has no label outcome",
		`approvebot_clicks_total{result="failed"}`:                       `never has result="failed"`,
		`sum by (channel) (rate(approvebot_clicks_total[5m]))`:           "grouped by channel",
		`sum(rate(approvebot_clicks_total{result="refused"}[5m])) > 0 +`: "parse error",
	} {
		got := strings.Join(checkExpr(expr, have), "; ")
		if !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", expr, got, want)
		}
	}
	if p := checkExpr(`sum by (platform, job) (rate(approvebot_clicks_total{result="refused", job="x"}[5m])) / on() up`, have); len(p) != 0 {
		t.Errorf("a correct expression: %v", p)
	}
}
