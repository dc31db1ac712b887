package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/jsonhttp"
	"github.com/approvebot/approvebot/policy"
)

// reloader re-reads the configuration file of a running service and
// applies it whole, or not at all.
type reloader struct {
	svc    *service
	path   string
	getenv func(string) (string, bool)
}

// reload reads the file again and, if it is valid and changes nothing that
// only a restart can change, makes it the running configuration: who may
// call, the approver groups, routes and chains new requests get, the
// shutdown grace, and what each platform takes on in place (Running's
// Reload: the Slack signing secret and bot token, the Teams app password,
// the web inbox's subjects), its secrets read again from their environment
// variables or *_file files. Requests already open keep the
// chain, groups and deadline they started with. Any problem leaves the
// running configuration as it was, and the error says what is wrong.
func (rl *reloader) reload() (*policy.Config, error) {
	cfg, _, err := rl.reloadNoting()
	return cfg, err
}

// reloadNoting is reload, also returning notes on what takes effect later.
func (rl *reloader) reloadNoting() (*policy.Config, []string, error) {
	rl.svc.reloadMu.Lock()
	defer rl.svc.reloadMu.Unlock()
	next, err := policy.Load(rl.path, rl.getenv, rl.svc.plugins.Platforms())
	if err != nil {
		return nil, nil, err
	}
	cur := rl.svc.cfg
	keys, notes := restartOnly(rl.svc.plugins, cur, next)
	if len(keys) > 0 {
		return nil, nil, fmt.Errorf("%s changed: restart approvebot to apply that (the running configuration is unchanged)", strings.Join(keys, ", "))
	}
	// Callers are read from the policy, so who may call and where their
	// requests go change in this one step.
	rl.svc.engine.SetPolicy(next)
	for _, r := range rl.svc.running {
		r.Reload(next)
	}
	rl.svc.cfg = next
	rl.svc.log.Info("configuration reloaded", "file", rl.path, "callers", len(next.Callers),
		"groups", len(next.Approvers), "routes", len(next.Routes), "chains", len(next.Chains))
	for _, n := range notes {
		rl.svc.log.Warn("configuration reloaded: " + n)
	}
	return next, notes, nil
}

// restartOnly names the settings that differ between a and b and that a
// running service cannot take on: its address, store, signing key, TLS
// files, which platforms it talks to and how (each platform says, in
// order), and the admin token guarding this very endpoint; and notes on
// what the platforms take on only later.
func restartOnly(plugins bot.Plugins, a, b *policy.Config) (keys, notes []string) {
	diff := func(key string, x, y any) {
		if !reflect.DeepEqual(x, y) {
			keys = append(keys, key)
		}
	}
	diff("listen", a.Listen, b.Listen)
	diff("store", a.Store, b.Store)
	diff("signing", a.Signing, b.Signing)
	diff("tls", a.TLS, b.TLS)
	diff("admin.token (set or not)", a.Admin.Token == "", b.Admin.Token == "")
	diff("delivery", a.Delivery, b.Delivery)
	diff("public_url", a.PublicURL, b.PublicURL)
	diff("audit", a.Audit, b.Audit)
	diff("server", a.Server, b.Server)
	pk, notes := plugins.RestartOnly(a, b)
	return append(keys, pk...), notes
}

// reloadHandler is POST /admin/reload.
func (rl *reloader) reloadHandler(w http.ResponseWriter, _ *http.Request) {
	cfg, notes, err := rl.reloadNoting()
	if err != nil {
		jsonhttp.Write(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
		return
	}
	jsonhttp.Write(w, http.StatusOK, map[string]any{"reloaded": true, "callers": len(cfg.Callers),
		"groups": len(cfg.Approvers), "routes": len(cfg.Routes), "chains": len(cfg.Chains), "notes": notes})
}

// cmdReload asks the running service to reload its configuration file, as
// SIGHUP does, and reports the outcome: exit 0 when it took the file, 1
// with the reason when it kept the running configuration.
func cmdReload(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig(flag.NewFlagSet("reload", flag.ContinueOnError), args, getenv, stderr)
	if err != nil {
		return err
	}
	// The server is asked at the address and with the admin token of the
	// file given: reload it with the file it runs with.
	b, err := adminBackend(cfg)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.server+"/admin/reload", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("ask the running server (is approvebot running at %s?): %w", b.server, err)
	}
	defer resp.Body.Close()
	var out struct {
		Error   string   `json:"error"`
		Callers int      `json:"callers"`
		Groups  int      `json:"groups"`
		Routes  int      `json:"routes"`
		Chains  int      `json:"chains"`
		Notes   []string `json:"notes"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		if out.Error == "" {
			out.Error = resp.Status
		}
		return fmt.Errorf("reload refused: %s", out.Error)
	}
	fmt.Fprintf(stdout, "reloaded: %d callers, %d groups, %d routes, %d chains\n", out.Callers, out.Groups, out.Routes, out.Chains)
	for _, n := range out.Notes {
		fmt.Fprintln(stdout, "note:", n)
	}
	return nil
}
