package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/intake/intaketest"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/signing"
)

// The demo's people: an approver of each of its two groups, and someone
// who may sign in but not approve.
var demoPeople = []bot.DemoPerson{
	{Name: "Alice (treasury)", Email: "alice@example.com", Note: "approves for treasury (stage 1)"},
	{Name: "Bob (security)", Email: "bob@example.com", Note: "approves for security (stage 2)"},
	{Name: "Carol (visitor)", Email: "carol@example.com", Note: "may look, not approve"},
}

const demoIssuer = "approvebot-demo"

// demoConfig is the demo's configuration: the inbox only, two groups, a
// route for the legacy transfer and a two-stage chain for schema 1.0.
const demoConfig = `listen: ${LISTEN}
public_url: http://${LISTEN}
shutdown_grace: 1s
store:
  path: ${DIR}/approvebot.db
callers:
  - name: demo-agent
    token: ${TOKEN}
signing:
  key_file: ${DIR}/signing.key
  issuer: ` + demoIssuer + `
approvers:
  treasury:
    web:
      users: [alice@example.com]
  security:
    web:
      users: [bob@example.com]
routes:
  - match: {rule_name: approve-large-transfer}
    approvers: [treasury]
    timeout: 30m
chains:
  payments-release:
    version: "1"
    separation_of_duties: true
    timeout: 30m
    stages:
      - {approvers: [treasury]}
      - {approvers: [security]}
`

// cmdDemo runs approvebot with no credentials and no configuration: a
// store in a temporary directory, the web inbox on loopback with the demo
// sign-in, and a demo agent whose requests wait there for a decision.
// With --config it runs the user's own file instead, the demo sign-in
// standing in for the identity provider.
func cmdDemo(ctx context.Context, clock bot.Clock, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	path := fs.String("config", "", "try this configuration file, with the demo sign-in in place of its identity provider")
	listen := fs.String("listen", "127.0.0.1:8080", "loopback address for the inbox (a free port is taken if it is busy)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	logs := newLogStream(stderr)
	defer logs.Close()
	log := newLogger(logs, slog.LevelWarn)
	var cfg *policy.Config
	plugins := platforms()
	people := demoPeople
	var token string
	if *path != "" {
		var err error
		if cfg, err = policy.LoadDemo(*path, getenv, plugins.Platforms()); err != nil {
			return err
		}
		if people = peopleOf(plugins, cfg); len(people) == 1 {
			return fmt.Errorf("%s: no approver group has web users (approvers.<group>.web.users) to sign in as", *path)
		}
	} else {
		dir, err := os.MkdirTemp("", "approvebot-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		addr, err := loopbackPort(*listen)
		if err != nil {
			return err
		}
		token = randomHex(24)
		env := map[string]string{"LISTEN": addr, "DIR": dir, "TOKEN": token}
		cfg, err = policy.ParseDemo([]byte(demoConfig), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, plugins.Platforms())
		if err != nil {
			return fmt.Errorf("demo configuration: %w", err)
		}
	}
	svc, err := buildWith(ctx, cfg, plugins, log, nil, clock, people)
	if err != nil {
		return err
	}
	base := svc.scheme + "://" + svc.listener.Addr().String()
	fmt.Fprintf(stdout, "approvebot listening on %s\n", base)
	fmt.Fprintf(stdout, "\nOpen %s/inbox/ in your browser and sign in as one of:\n", base)
	for _, p := range people {
		fmt.Fprintf(stdout, "  - %s <%s>: %s\n", p.Name, p.Email, p.Note)
	}
	agentDone := make(chan struct{})
	if token != "" {
		fmt.Fprintf(stdout, `
The demo agent now asks for two approvals:
  1. a transfer (legacy request, with context): Alice approves or denies it;
  2. a payment release bound to its exact action (schema 1.0), in two
     stages: Alice approves first, then Bob. Carol sees no buttons.
Each answer is printed here as it arrives, its signature checked.
Press Ctrl-C to stop.

`)
		go func() {
			defer close(agentDone)
			demoAgent(ctx, clock, base, token, stdout)
		}()
	} else {
		close(agentDone)
		fmt.Fprintf(stdout, "\nYour agents call %s/v1/approvals with the callers' tokens of %s. Press Ctrl-C to stop.\n", base, *path)
	}
	err = svc.serve(ctx)
	<-agentDone
	if token != "" {
		fmt.Fprintln(stdout, "approvebot demo stopped; its temporary store is removed.")
	}
	return err
}

// peopleOf offers the people cfg names on the platforms with a sign-in
// the demo stands in for, and a visitor.
func peopleOf(plugins bot.Plugins, cfg *policy.Config) []bot.DemoPerson {
	var out []bot.DemoPerson
	for _, p := range plugins {
		if ds, ok := p.(bot.DemoSignIn); ok {
			out = append(out, ds.DemoPeople(cfg)...)
		}
	}
	return append(out, bot.DemoPerson{Name: "Visitor", Email: "visitor@example.invalid", Note: "in no group: may look, not approve"})
}

// loopbackPort returns addr when it is free, else a free port on its host.
// Only loopback addresses are accepted.
func loopbackPort(addr string) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", usageError("--listen must be host:port on loopback, e.g. 127.0.0.1:8080")
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", usageError("the demo listens on loopback only (127.0.0.1 or ::1), not " + host)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		l, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return "", err
		}
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// demoAgent sends the demo's two requests and prints each answer when it
// comes, with its signed assertion verified against the server's JWKS.
func demoAgent(ctx context.Context, clock bot.Clock, base, token string, out io.Writer) {
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format, args...)
	}
	legacy, _ := intaketest.LegacyBody(intaketest.Legacy{
		AgentID: "payments-agent", Action: "transfer", Approvers: []string{"treasury"},
		Context: intaketest.Object{
			{Key: "amount", Value: "25,000.00 EUR"},
			{Key: "from_account", Value: "DE89 3704 0044 0532 0130 00"},
			{Key: "to_account", Value: "FR14 2004 1010 0505 0001 3M02 606"},
			{Key: "reference", Value: "Invoice 2026-1142, ACME Supplies"},
		},
	})
	v1, _ := intaketest.V1Body(intaketest.V1{
		AgentID: "payments-agent", Operation: "payment.release", TargetResource: intaketest.Str("vendor:acme-supplies"),
		ApprovalChainID: "payments-release", ApprovalChainVersion: "1", PolicyVersion: "2026.12.01",
		ToolName: "release_payment", IncludeBinding: true, ExpiresAt: clock.Now().Add(30 * time.Minute),
		Parameters: intaketest.Object{{Key: "amount", Value: 120000}, {Key: "currency", Value: "EUR"}, {Key: "batch", Value: "PAY-7731"}},
	})
	var wg sync.WaitGroup
	for _, rq := range []struct {
		name string
		body []byte
	}{{"transfer (legacy)", legacy}, {"payment release (1.0, two stages)", v1}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			say("agent: sent %s; waiting for a decision\n", rq.name)
			line, err := demoAsk(ctx, clock, base, token, rq.body)
			if err != nil {
				if ctx.Err() == nil {
					say("agent: %s: %v\n", rq.name, err)
				}
				return
			}
			say("agent: %s: %s\n", rq.name, line)
		}()
	}
	wg.Wait()
}

// demoAsk posts one request, waits for its answer and describes it.
func demoAsk(ctx context.Context, clock bot.Clock, base, token string, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/approvals", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var a struct {
		Approved  bool   `json:"approved"`
		Status    string `json:"status"`
		Approver  string `json:"approver"`
		Reason    string `json:"reason"`
		Assertion string `json:"identity_assertion"`
		Error     string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&a); err != nil {
		return "", fmt.Errorf("unreadable answer (HTTP %d): %v", resp.StatusCode, err)
	}
	if a.Error != "" {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, a.Error)
	}
	verdict := "DENIED"
	if a.Approved {
		verdict = "APPROVED"
	}
	line := fmt.Sprintf("%s (%s) by %s: %s", verdict, a.Status, a.Approver, a.Reason)
	if a.Assertion == "" {
		return line + " [no signed assertion]", nil
	}
	claims, err := demoVerify(ctx, clock, base, a.Assertion)
	if err != nil {
		return line + " [SIGNATURE NOT VERIFIED: " + err.Error() + "]", nil
	}
	return fmt.Sprintf("%s [signature verified: decision %v, identity_assurance %v, signed by %s]", line, claims["decision"], claims["identity_assurance"], demoIssuer), nil
}

func demoVerify(ctx context.Context, clock bot.Clock, base, token string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/.well-known/jwks.json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	jwks, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("JWKS: HTTP " + resp.Status)
	}
	return signing.Verify(jwks, token, demoIssuer, clock.Now())
}
