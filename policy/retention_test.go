package policy_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/policy"
)

func TestStoreRetention(t *testing.T) {
	for doc, want := range map[string]time.Duration{
		"":                               0,
		"store: {retention: 90d}\n":      90 * 24 * time.Hour,
		"store: {retention: 1d}\n":       24 * time.Hour,
		"store: {retention: 2160h}\n":    2160 * time.Hour,
		"store: {retention: 36500d}\n":   36500 * 24 * time.Hour,
		"store: {retention: \"\"}\n":     0,
		"store: {retention: 25h30m}\n":   25*time.Hour + 30*time.Minute,
		"store: {retention: \" 7d \"}\n": 7 * 24 * time.Hour,
	} {
		cfg, err := Parse([]byte(baseY+doc), nil)
		if err != nil {
			t.Errorf("%q: %v", doc, err)
			continue
		}
		if cfg.Store.Retention != want {
			t.Errorf("%q: retention %s, want %s", doc, cfg.Store.Retention, want)
		}
	}
	cfg, err := Parse([]byte(baseY+"store: {retention: 90d}\n"), nil)
	if err != nil || !strings.Contains(cfg.Summary(), "retention: decided requests removed 90d after their last record") {
		t.Errorf("summary does not say the retention: %v\n%s", err, cfg.Summary())
	}
}

func TestStoreRetentionErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"store: {retention: 90}\n":                    `line 9: store.retention: 90 has no unit: write days like "90d"`,
		"store: {retention: 90 days}\n":               `line 9: store.retention: "90 days" is not a duration`,
		"store: {retention: 12h}\n":                   "line 9: store.retention must be at least 1d (decided requests are kept at least a day), not 12h",
		"store: {retention: 0d}\n":                    "line 9: store.retention must be at least 1d",
		"store: {retention: -5d}\n":                   `line 9: store.retention: "-5d" is not a duration`,
		"store: {retention: 36501d}\n":                "line 9: store.retention: 36501d is too long (at most 36500d)",
		"store: {retention: 99999999999999999999d}\n": "line 9: store.retention: 99999999999999999999d is too long",
		"store: {retention: 900000h}\n":               "line 9: store.retention: 900000h is too long",
		"store: {retention: [90d]}\n":                 "line 9: store.retention must be a single value",
		"store: {retentoin: 90d}\n":                   "retentoin",
	} {
		_, err := Parse([]byte(baseY+doc), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", doc, err, want)
		}
	}
}

func FuzzStoreRetention(f *testing.F) {
	for _, s := range []string{"90d", "1d", "2160h", "12h", "0d", "-1d", "36501d", "99999999999999999999d", "1.5d", "d", "90", "1h1d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		doc := baseY + "store:\n  retention: " + strconv.Quote(s) + "\n"
		cfg, err := Parse([]byte(doc), nil)
		if err != nil {
			if !strings.Contains(err.Error(), "store.retention") && !strings.Contains(err.Error(), "line 10") {
				t.Fatalf("%q: error names neither the key nor the line: %v", s, err)
			}
			return
		}
		if r := cfg.Store.Retention; r != 0 && (r < policy.MinRetention || r > policy.MaxRetention) {
			t.Fatalf("%q: accepted %s, out of range", s, r)
		}
	})
}
