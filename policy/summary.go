package policy

import (
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/approvebot/approvebot"
)

// Summary describes the configuration for an operator checking it: who may
// call, which platforms are set up, each group, route and chain. It never
// shows a token, password or secret. Groups and chains are sorted by name,
// routes kept in file order.
func (c *Config) Summary() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	line("listen:    %s", c.Listen)
	line("store:     %s", c.Store.Path)
	if c.Store.Retention > 0 {
		line("retention: decided requests removed %s after their last record, under a signed seal", days(c.Store.Retention))
	}
	line("signing:   key %s, issuer %q", c.Signing.KeyFile, c.Signing.Issuer)
	if c.Admin.Token != "" {
		line("admin:     enabled (token set)")
	} else {
		line("admin:     disabled (no admin.token)")
	}
	line("delivery:  retried for up to %s", c.Delivery.Timeout)
	line("audit:     %s", c.Audit.summary())
	names := make([]string, len(c.Callers))
	for i, cl := range c.Callers {
		names[i] = cl.Name
		if cl.MayRequest != nil {
			names[i] += " (may request: " + strings.Join(cl.MayRequest, ", ") + ")"
		}
	}
	line("callers:   %s", orNone(strings.Join(names, ", ")))

	var platforms []string
	for _, p := range c.Platforms {
		if sec := c.Section(p.Name()); sec != nil {
			platforms = append(platforms, p.DescribeSection(sec))
		}
	}
	line("platforms: %s", orNone(strings.Join(platforms, "; ")))

	line("")
	line("approver groups (%d):", len(c.Approvers))
	for _, name := range sortedKeys(c.Approvers) {
		g := c.Approvers[name]
		line("  %s", name)
		for _, p := range c.Platforms {
			if s, ok := g.Side(p.Name()); ok {
				line("    %s: %s", p.Name(), p.DescribeSide(s))
			}
		}
	}

	line("")
	line("routes (%d, first match wins):", len(c.Routes))
	for _, r := range c.Routes {
		to := "chain " + r.Chain
		if r.Chain == "" {
			to = fmt.Sprintf("%s, quorum %s", strings.Join(r.Approvers, ", "), quorumText(r.Quorum))
		}
		timeout := "timeout " + DefaultTimeout.String() + " (default)"
		switch {
		case r.Timeout > 0:
			timeout = "timeout " + r.Timeout.String()
		case r.Chain != "" && c.Chains[r.Chain].Timeout > 0:
			timeout = "timeout " + c.Chains[r.Chain].Timeout.String() + " (the chain's)"
		}
		line("  line %d: %s -> %s, %s", r.Line, r.Match, to, timeout)
	}
	line("  otherwise: legacy requests go to the groups they name (quorum any, timeout %s); schema 1.0 requests to their approval_chain_id", DefaultTimeout)

	line("")
	line("chains (%d):", len(c.Chains))
	for _, id := range sortedKeys(c.Chains) {
		ch := c.Chains[id]
		extra := ""
		if ch.SeparationOfDuties {
			extra += ", separation of duties"
		}
		if ch.Timeout > 0 {
			extra += ", timeout " + ch.Timeout.String()
		} else {
			extra += ", timeout " + DefaultTimeout.String() + " (default)"
		}
		line("  %s version %q%s", id, ch.Version, extra)
		for i, st := range ch.Stages {
			line("    stage %d: %s, quorum %s", i+1, strings.Join(st.Approvers, ", "), quorumText(st.Quorum))
		}
	}
	return b.String()
}

func quorumText(q approvebot.Quorum) string {
	switch q.Mode {
	case approvebot.QuorumCount:
		return fmt.Sprintf("%d distinct approvers", q.N)
	case approvebot.QuorumAll:
		return "all (one per group)"
	default:
		return "any"
	}
}

// ListText is a list of names as a summary shows it: "a, b", or "(none)".
func ListText(s []string) string {
	return orNone(strings.Join(s, ", "))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// RedactURL is raw without any password it carries, for a summary.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (a AuditConfig) summary() string {
	var sinks []string
	if a.CheckpointFile != "" {
		sinks = append(sinks, "file "+a.CheckpointFile)
	}
	if a.CheckpointLog {
		sinks = append(sinks, "the log")
	}
	if len(sinks) == 0 {
		return "no checkpoints (only the receipts in signed decisions anchor the log)"
	}
	when := "at each resolution"
	if a.CheckpointInterval > 0 {
		when += " and every " + a.CheckpointInterval.String()
	}
	return "signed checkpoints to " + strings.Join(sinks, " and ") + ", " + when
}
