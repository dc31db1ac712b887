package policy_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/policy"
)

func TestServerSection(t *testing.T) {
	cfg, err := Parse([]byte(baseY), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := policy.ServerConfig{MaxConnections: policy.DefaultMaxConnections, MaxHeld: policy.DefaultMaxHeld, HeaderTimeout: policy.DefaultHeaderTimeout,
		MaxHeaderBytes: policy.DefaultMaxHeaderBytes, CallbackReadTimeout: policy.DefaultCallbackReadTimeout, CallbackMemory: policy.DefaultCallbackMemory}
	if cfg.Server != want {
		t.Fatalf("defaults: %+v, want %+v", cfg.Server, want)
	}
	cfg, err = Parse([]byte(baseY+"server:\n  max_connections: 64\n  max_held: 0\n  header_timeout: 2s\n  max_header_bytes: 16KiB\n  callback_read_timeout: 3s\n  callback_memory: 4MiB\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want = policy.ServerConfig{MaxConnections: 64, MaxHeld: 0, HeaderTimeout: 2 * time.Second, MaxHeaderBytes: 16 << 10, CallbackReadTimeout: 3 * time.Second, CallbackMemory: 4 << 20}
	if cfg.Server != want {
		t.Fatalf("set: %+v, want %+v", cfg.Server, want)
	}
}

func TestServerSectionErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"server: {max_connections: 0}\n":        `line 9: server.max_connections must be a whole number from 1 to 1048576, not "0"`,
		"server: {max_connections: many}\n":     `server.max_connections must be a whole number`,
		"server: {max_held: -1}\n":              `server.max_held must be a whole number from 0`,
		"server: {header_timeout: 0s}\n":        "server.header_timeout must be more than 0",
		"server: {header_timeout: 5m}\n":        "server.header_timeout may be at most 1m, not 5m0s",
		"server: {callback_read_timeout: 10}\n": "server.callback_read_timeout: 10 has no unit",
		"server: {max_header_bytes: 1KiB}\n":    "server.max_header_bytes must be between 4KiB and 1MiB, not 1KiB",
		"server: {max_header_bytes: 2MiB}\n":    "server.max_header_bytes must be between 4KiB and 1MiB",
		"server: {callback_memory: 100KiB}\n":   "server.callback_memory must be between 1MiB and 1GiB, not 100KiB",
		"server: {max_conns: 10}\n":             `unknown key "max_conns" in server`,
		"server: [1]\n":                         "server must be a mapping",
	} {
		_, err := Parse([]byte(baseY+doc), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", doc, err, want)
		}
	}
}

func FuzzServerCount(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "1024", "1e3", "0x10", "99999999999999999999", " 5", "+5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, n string) {
		cfg, err := Parse([]byte(baseY+"server:\n  max_connections: "+strconv.Quote(n)+"\n"), nil)
		if err == nil && (cfg.Server.MaxConnections < 1 || cfg.Server.MaxConnections > 1<<20) {
			t.Fatalf("%q: accepted %d", n, cfg.Server.MaxConnections)
		}
	})
}
