package policy_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/policy"
)

func TestStoreMaxSizeAndShutdownGrace(t *testing.T) {
	for _, tc := range []struct {
		doc   string
		size  int64
		grace time.Duration
	}{
		{doc: "", size: 0, grace: policy.DefaultShutdownGrace},
		{doc: "store: {max_size: 64MiB}\n", size: 64 << 20, grace: policy.DefaultShutdownGrace},
		{doc: "store: {max_size: 2GB}\nshutdown_grace: 1s\n", size: 2e9, grace: time.Second},
		{doc: "store: {max_size: 1 GiB}\nshutdown_grace: 0s\n", size: 1 << 30, grace: 0},
		{doc: "store: {max_size: 1048576B}\n", size: 1 << 20, grace: policy.DefaultShutdownGrace},
	} {
		cfg, err := Parse([]byte(baseY+tc.doc), nil)
		if err != nil {
			t.Errorf("%q: %v", tc.doc, err)
			continue
		}
		if cfg.Store.MaxSize != tc.size || cfg.ShutdownGrace != tc.grace {
			t.Errorf("%q: max size %d, grace %s; want %d, %s", tc.doc, cfg.Store.MaxSize, cfg.ShutdownGrace, tc.size, tc.grace)
		}
	}
}

func TestStoreMaxSizeErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"store: {max_size: 64}\n":                      `line 9: store.max_size: 64 has no unit: write a size like "64MiB"`,
		"store: {max_size: 64 MiBs}\n":                 `line 9: store.max_size: unknown unit "MiBs" in "64 MiBs"`,
		"store: {max_size: lots}\n":                    `line 9: store.max_size: "lots" is not a size`,
		"store: {max_size: 512KiB}\n":                  "line 9: store.max_size must be at least 1MiB, not 512KiB",
		"store: {max_size: 99999999999999999999TiB}\n": "line 9: store.max_size: 99999999999999999999TiB is too large",
		"store: {max_size: 9000000TiB}\n":              "line 9: store.max_size: 9000000TiB is too large",
		"store: {max_size: [1MiB]}\n":                  "line 9: store.max_size must be a single value",
		"shutdown_grace: 1h\n":                         "line 9: shutdown_grace may be at most 10m, not 1h0m0s",
		"shutdown_grace: 20\n":                         `line 9: shutdown_grace: 20 has no unit`,
		"store:\n  max_size: ${MAX_SIZE}\n":            "line 10: store.max_size: environment variable MAX_SIZE is not set",
	} {
		_, err := Parse([]byte(baseY+doc), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", doc, err, want)
		}
	}
}

func FuzzStoreMaxSize(f *testing.F) {
	for _, s := range []string{"64MiB", "1GB", "1 GiB", "0B", "-1MiB", "1e9B", "99999999999999999999TiB", "12", "MiB", "1.5GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, size string) {
		doc := baseY + "store:\n  max_size: " + strconv.Quote(size) + "\n"
		cfg, err := Parse([]byte(doc), nil)
		if err != nil {
			if !strings.Contains(err.Error(), "store.max_size") && !strings.Contains(err.Error(), "line 10") {
				t.Fatalf("%q: error does not name the key: %v", size, err)
			}
			return
		}
		if cfg.Store.MaxSize != 0 && cfg.Store.MaxSize < policy.MinStoreSize {
			t.Fatalf("%q: accepted %d, below the minimum", size, cfg.Store.MaxSize)
		}
	})
}
