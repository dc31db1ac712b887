package policy_test

import (
	"strings"
	"testing"

	"github.com/approvebot/approvebot/policy"
)

func TestCallerLimits(t *testing.T) {
	cfg, err := Parse([]byte(baseY), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Callers[0]; c.Rate != policy.DefaultCallerRate || c.Burst != policy.DefaultCallerBurst || c.MaxPending != policy.DefaultCallerMaxPending {
		t.Errorf("defaults: %+v, want rate %v, burst %d, max_pending %d", c, policy.DefaultCallerRate, policy.DefaultCallerBurst, policy.DefaultCallerMaxPending)
	}
	for rate, want := range map[string]float64{"10/s": 10, "600/m": 10, "36/h": 0.01, "2.5 / s": 2.5} {
		y := "callers:\n  - {name: agent, token: 0123456789abcdef0123, rate: \"" + rate + "\", burst: 3, max_pending: 7}\n" + slackY + groupsY
		cfg, err := Parse([]byte(y), nil)
		if err != nil {
			t.Fatalf("rate %q: %v", rate, err)
		}
		if c := cfg.Callers[0]; c.Rate != want || c.Burst != 3 || c.MaxPending != 7 {
			t.Errorf("rate %q: %+v, want rate %v, burst 3, max_pending 7", rate, c, want)
		}
	}
}

func TestCallerLimitMistakes(t *testing.T) {
	for set, want := range map[string]string{
		`rate: 10`:          `line 2: callers[0].rate: 10 has no unit: write a rate like "10/s" or "600/m"`,
		`rate: fast`:        `line 2: callers[0].rate: "fast" is not a rate`,
		`rate: 10/d`:        `line 2: callers[0].rate: "10/d" is not a rate`,
		`rate: 0/s`:         `line 2: callers[0].rate must be more than 0, not 0/s`,
		`rate: 2000000/s`:   `line 2: callers[0].rate: 2000000/s is too high`,
		`burst: 0`:          `line 2: callers[0].burst must be at least 1, not 0`,
		`burst: many`:       `line 2: callers[0].burst must be a whole number, not "many"`,
		`max_pending: 1e3`:  `line 2: callers[0].max_pending must be a whole number, not "1e3"`,
		`max_pending: -1`:   `line 2: callers[0].max_pending must be at least 1, not -1`,
		`max_pending: 9e99`: `line 2: callers[0].max_pending must be a whole number`,
		`burst: 99999999`:   `line 2: callers[0].burst: 99999999 is too large (at most 1000000)`,
		`limit: 5`:          `line 2: unknown key "limit" in callers[0]`,
	} {
		y := "callers:\n  - {name: agent, token: 0123456789abcdef0123, " + set + "}\n" + slackY + groupsY
		_, err := Parse([]byte(y), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", set, err, want)
		}
	}
}
