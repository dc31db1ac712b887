package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/policy"
	"github.com/coreos/go-systemd/v22/unit"
)

const unitFile = "../manifests/systemd/approvebot.service"

// unitDirectives are the directives the unit may use, by section: a
// misspelt one (systemd warns and ignores it) fails the test. The ones
// listed in multi may appear more than once.
var (
	unitDirectives = map[string][]string{
		"Unit": {"Description", "Documentation", "After", "Wants"},
		"Service": {"Type", "ExecStart", "ExecReload", "EnvironmentFile", "KillSignal", "TimeoutStopSec", "Restart", "RestartSec",
			"LimitNOFILE", "DynamicUser", "StateDirectory", "StateDirectoryMode", "UMask", "NoNewPrivileges",
			"ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
			"ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname",
			"ProtectProc", "ProcSubset", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
			"LockPersonality", "MemoryDenyWriteExecute", "RemoveIPC", "CapabilityBoundingSet", "AmbientCapabilities",
			"RestrictAddressFamilies", "SystemCallFilter", "SystemCallErrorNumber", "SystemCallArchitectures"},
		"Install": {"WantedBy"},
	}
	multi = []string{"SystemCallFilter"}
)

// parseUnit reads the unit with go-systemd's parser and holds it to
// unitDirectives: unknown sections and directives and repeated single-value
// directives are errors naming the line's directive.
func parseUnit(t *testing.T, data []byte) map[string]map[string][]string {
	t.Helper()
	opts, err := unit.DeserializeOptions(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", unitFile, err)
	}
	out := map[string]map[string][]string{}
	for _, o := range opts {
		known, ok := unitDirectives[o.Section]
		if !ok {
			t.Errorf("unexpected section [%s]", o.Section)
			continue
		}
		if !slices.Contains(known, o.Name) {
			t.Errorf("[%s] %s: not a directive this unit should use (misspelt?)", o.Section, o.Name)
		}
		if out[o.Section] == nil {
			out[o.Section] = map[string][]string{}
		}
		if len(out[o.Section][o.Name]) > 0 && !slices.Contains(multi, o.Name) {
			t.Errorf("[%s] %s is set twice", o.Section, o.Name)
		}
		out[o.Section][o.Name] = append(out[o.Section][o.Name], o.Value)
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	u := parseUnit(t, data)
	svc := u["Service"]
	one := func(name string) string {
		if v := svc[name]; len(v) == 1 {
			return v[0]
		}
		t.Errorf("[Service] %s: %v, want one value", name, svc[name])
		return ""
	}
	for name, want := range map[string]string{
		"DynamicUser": "yes", "StateDirectory": "approvebot", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
		"PrivateTmp": "yes", "ProtectHome": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
		"KillSignal": "SIGTERM", "PrivateDevices": "yes", "RestrictSUIDSGID": "yes",
	} {
		if got := one(name); got != want {
			t.Errorf("[Service] %s=%s, want %s", name, got, want)
		}
	}
	families := strings.Fields(one("RestrictAddressFamilies"))
	slices.Sort(families)
	if !slices.Equal(families, []string{"AF_INET", "AF_INET6", "AF_UNIX"}) {
		t.Errorf("RestrictAddressFamilies %v, want AF_INET AF_INET6 AF_UNIX", families)
	}
	if !slices.Contains(svc["SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter %v lacks @system-service", svc["SystemCallFilter"])
	}
	if u["Install"]["WantedBy"] == nil {
		t.Error("no [Install] WantedBy")
	}

	// ExecStart runs serve on a config whose store and signing key are in
	// the StateDirectory, the one place ProtectSystem=strict leaves writable.
	start := strings.Fields(one("ExecStart"))
	if len(start) != 4 || !path.IsAbs(start[0]) || start[1] != "serve" || start[2] != "--config" {
		t.Fatalf("ExecStart %v, want /path/approvebot serve --config FILE", start)
	}
	example, err := os.ReadFile(filepath.Join(repo, "examples", "approvebot.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Parse(example, func(k string) (string, bool) {
		switch k {
		case "SLACK_API_URL", "TEAMS_OPENID_METADATA_URL", "TEAMS_TOKEN_URL":
			return "", false
		case "SLACK_BOT_TOKEN":
			return "xoxb-example-bot-token", true
		case "TEAMS_APP_ID", "TEAMS_TENANT_ID":
			return "11111111-2222-3333-4444-555555555555", true
		}
		return "example-" + strings.ToLower(k) + "-0123456789abcdef", true
	}, platforms)
	if err != nil {
		t.Fatalf("examples/approvebot.yaml: %v", err)
	}
	state := "/var/lib/" + one("StateDirectory")
	for what, file := range map[string]string{"store.path": cfg.Store.Path, "signing.key_file": cfg.Signing.KeyFile} {
		if path.Dir(file) != state {
			t.Errorf("examples/approvebot.yaml %s %s is not in the StateDirectory %s", what, file, state)
		}
	}
	stop, err := time.ParseDuration(one("TimeoutStopSec"))
	if err != nil || stop <= cfg.ShutdownGrace+10*time.Second {
		t.Errorf("TimeoutStopSec %s, want more than shutdown_grace %v + 10s (%v)", one("TimeoutStopSec"), cfg.ShutdownGrace, err)
	}

	// ExecReload only once approvebot can reload.
	bin := staticBinary(t)
	help, _ := runOutput(bin, "--help")
	if canReload := strings.Contains(help, "approvebot reload"); len(svc["ExecReload"]) > 0 != canReload {
		t.Errorf("ExecReload %v, but approvebot reload exists: %v", svc["ExecReload"], canReload)
	} else if canReload && !slices.Equal(strings.Fields(one("ExecReload")), []string{"/bin/kill", "-HUP", "$MAINPID"}) {
		t.Errorf("ExecReload=%s, want /bin/kill -HUP $MAINPID (approvebot re-reads its config on SIGHUP)", one("ExecReload"))
	}

	// systemd's own check, where systemd-analyze is installed: the unit
	// with ExecStart pointing at the built binary loads without warnings.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: systemd's own check skipped")
		return
	}
	dir := t.TempDir()
	copyUnit := filepath.Join(dir, "approvebot.service")
	if err := os.WriteFile(copyUnit, bytes.Replace(data, []byte(start[0]), []byte(bin), -1), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCombined(analyze, "verify", copyUnit)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func runOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}

func runCombined(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
