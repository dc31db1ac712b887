package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/approvebot/approvebot/policy/confnode"
)

// maxCallerLimit bounds a caller's burst and max_pending, and its rate a
// second: past it a limit limits nothing.
const maxCallerLimit = 1_000_000

var ratePattern = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|m|h)$`)

// rate reads a request rate: a number per second, minute or hour ("10/s",
// "600/m", "100/h"), as requests a second. Absent or empty gives def.
func (p *parser) rate(o *confnode.Object, key string, def float64) float64 {
	s := p.Str(o, key, confnode.Optional)
	if s == "" {
		return def
	}
	at, line := confnode.Join(o.Path, key), o.Val[key].Line
	m := ratePattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		if confnode.WholeNumber(s) {
			p.Add(line, `%s: %s has no unit: write a rate like "10/s" or "600/m"`, at, s)
		} else {
			p.Add(line, `%s: %q is not a rate: write a number of requests per s, m or h, e.g. "10/s" or "600/m"`, at, s)
		}
		return def
	}
	n, err := strconv.ParseFloat(m[1], 64)
	per := map[string]float64{"s": 1, "m": 60, "h": 3600}[m[2]]
	switch {
	case err != nil || n/per > maxCallerLimit:
		p.Add(line, "%s: %s is too high (at most %d/s)", at, s, maxCallerLimit)
		return def
	case n == 0:
		p.Add(line, "%s must be more than 0, not %s (remove the caller to stop it asking)", at, s)
		return def
	}
	return n / per
}

func (p *parser) callers(top *confnode.Object, cfg *Config) {
	n := top.Val["callers"]
	if confnode.IsNull(n) {
		p.Add(top.Line(), "callers is missing: list at least one agent allowed to ask, e.g. - {name: payments-agent, token: ${PAYMENTS_AGENT_TOKEN}}")
		return
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.Add(n.Line, "callers must be a list of at least one {name, token}")
		return
	}
	names := map[string]int{}
	tokens := map[[32]byte]string{}
	for i, item := range n.Content {
		o := p.Object(item, fmt.Sprintf("callers[%d]", i), "name", "token", "token_file", "token_sha256", "may_request", "rate", "burst", "max_pending")
		if o == nil {
			continue
		}
		c := Caller{Name: p.Str(o, "name", confnode.Required)}
		if o.Has("token_sha256") {
			// The file holds only the token's hash: whoever reads the config
			// cannot call as this agent. The token itself is not seen, so
			// its strength cannot be checked here.
			if o.Has("token") || o.Has("token_file") {
				p.Add(o.Val["token_sha256"].Line, "callers[%d]: give token, token_file or token_sha256, not several", i)
			}
			h := p.Str(o, "token_sha256", confnode.Required)
			b, err := hex.DecodeString(h)
			if err != nil || len(b) != sha256.Size || strings.ToLower(h) != h {
				p.Add(o.Val["token_sha256"].Line, "callers[%d].token_sha256 must be 64 lowercase hex digits, the SHA-256 of the token (printf %%s \"$TOKEN\" | sha256sum)", i)
			} else {
				copy(c.TokenSHA256[:], b)
			}
		} else if c.Token = p.Secret(o, "token", MinSecretLength); c.Token != "" {
			c.TokenSHA256 = sha256.Sum256([]byte(c.Token))
		}
		c.MayRequest = p.mayRequest(o)
		c.Rate = p.rate(o, "rate", DefaultCallerRate)
		c.Burst = p.Count(o, "burst", DefaultCallerBurst, maxCallerLimit)
		c.MaxPending = p.Count(o, "max_pending", DefaultCallerMaxPending, maxCallerLimit)
		if c.Name != "" {
			if first, dup := names[c.Name]; dup {
				p.Add(o.Val["name"].Line, "callers[%d].name %q is already used at line %d: caller names must be unique", i, c.Name, first)
			}
			names[c.Name] = o.Val["name"].Line
		}
		if c.TokenSHA256 != ([32]byte{}) {
			if other, dup := tokens[c.TokenSHA256]; dup {
				p.Add(o.LineOf("token"), "callers[%d].token is the same as caller %q's: each caller needs its own token", i, other)
			}
			tokens[c.TokenSHA256] = c.Name
		}
		cfg.Callers = append(cfg.Callers, c)
	}
}

// mayRequest reads a caller's may_request: nil when absent (anywhere),
// otherwise the groups and chains it may ask, checked once they are known.
func (p *parser) mayRequest(o *confnode.Object) []string {
	if !o.Has("may_request") {
		return nil
	}
	at := confnode.Join(o.Path, "may_request")
	names, nodes := p.ListNodes(o, "may_request")
	if len(names) == 0 {
		if n := o.Val["may_request"]; confnode.IsNull(n) || n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
			p.Add(n.Line, "%s is empty: list the approver groups and chains the caller may ask, or remove the key to allow any", at)
		}
		return []string{}
	}
	p.later = append(p.later, func(cfg *Config) {
		for i, name := range names {
			_, group := cfg.Approvers[name]
			_, chain := cfg.Chains[name]
			if !group && !chain {
				p.Add(nodes[i].Line, "%s: %q is neither an approver group%s nor a chain%s", at, name, known(cfg.Approvers), known(cfg.Chains))
			}
		}
	})
	return names
}

// checkCallerRoutes checks routes that match a caller: the pattern must
// match some configured caller, and a route for one caller must not send
// its requests where that caller's may_request forbids (every one would be
// refused).
func (p *parser) checkCallerRoutes(cfg *Config) {
	for i, r := range cfg.Routes {
		pat := r.Match.Caller
		if pat == "" {
			continue
		}
		var hit []Caller
		for _, c := range cfg.Callers {
			if glob(pat, c.Name) {
				hit = append(hit, c)
			}
		}
		if len(hit) == 0 {
			names := make(map[string]bool, len(cfg.Callers))
			for _, c := range cfg.Callers {
				names[c.Name] = true
			}
			p.Add(r.Line, "routes[%d].match.caller: %q matches no caller%s", i, pat, known(names))
			continue
		}
		for _, c := range hit {
			if c.MayRequest == nil {
				continue
			}
			var refused []string
			if r.Chain != "" {
				if !slices.Contains(c.MayRequest, r.Chain) {
					refused = append(refused, r.Chain)
				}
			} else {
				for _, g := range r.Approvers {
					if !slices.Contains(c.MayRequest, g) {
						refused = append(refused, g)
					}
				}
			}
			if len(refused) > 0 {
				p.Add(r.Line, "routes[%d] sends caller %q's requests to %s, which its may_request does not list: every such request would be refused", i, c.Name, quoteAll(refused))
			}
		}
	}
}
