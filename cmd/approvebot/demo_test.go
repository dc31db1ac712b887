package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
)

// approvebot demo, in process and without a browser: the 1.0 payment
// release passes its two stages (Alice, then Bob), Carol is offered no
// buttons, and the demo agent prints the answer with its signature verified
// and identity_assurance oidc.
func TestDemoTwoStageChain(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(ctx, bot.SystemClock{}, []string{"demo", "--listen", "127.0.0.1:0"}, func(string) (string, bool) { return "", false }, pw, logs)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	next, _ := lineReader(t, pr, logs)
	base := strings.TrimPrefix(next("address", func(l string) bool { return strings.HasPrefix(l, "approvebot listening on ") }), "approvebot listening on ")
	h := &harness{t: t, url: base, logs: logs}
	person := func(i string) *browser {
		b := newBrowser(t)
		if p := b.post(base+"/inbox/demo-login", url.Values{"person": {i}}); p.status != http.StatusOK || !strings.HasSuffix(p.url, "/inbox/") {
			t.Fatalf("demo sign-in %s: %d at %s", i, p.status, p.url)
		}
		return b
	}
	alice, bob, carol := person("0"), person("1"), person("2")
	release := regexp.MustCompile(`href="/inbox/r/(ar_[0-9a-f]+)">payment.release on vendor:acme-supplies<`)
	var id string
	alice.waitFor(h, "the payment release for Alice", func() bool {
		m := release.FindStringSubmatch(alice.get(base + "/inbox/").body)
		if m != nil {
			id = m[1]
		}
		return m != nil && strings.Contains(alice.get(base+"/inbox/r/"+id).body, `id="approve"`)
	})
	p := alice.get(base + "/inbox/r/" + id)
	for _, want := range []string{"Verified against the action digest", "parameters.amount", "120000", "PAY-7731"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the release's page lacks %q", want)
		}
	}
	if c := carol.get(base + "/inbox/r/" + id); strings.Contains(c.body, `id="approve"`) {
		t.Errorf("Carol is offered buttons")
	}
	if b := bob.get(base + "/inbox/r/" + id); strings.Contains(b.body, `id="approve"`) || !strings.Contains(b.body, "Your stage has not opened yet") {
		t.Errorf("Bob is offered buttons before his stage, or not told why not")
	}
	if d := alice.post(base+"/inbox/r/"+id+"/decide", url.Values{"csrf": {csrfOf(t, p)}, "decision": {"approve"}}); d.status != http.StatusOK || !strings.Contains(d.body, "stage 1 of 2 is satisfied") {
		t.Fatalf("Alice's approval: %d\n%s", d.status, d.body)
	}
	bob.waitFor(h, "stage 2 open for Bob", func() bool {
		return strings.Contains(bob.get(base+"/inbox/r/"+id).body, `id="approve"`)
	})
	bp := bob.get(base + "/inbox/r/" + id)
	if d := bob.post(base+"/inbox/r/"+id+"/decide", url.Values{"csrf": {csrfOf(t, bp)}, "decision": {"approve"}}); d.status != http.StatusOK {
		t.Fatalf("Bob's approval: %d\n%s", d.status, d.body)
	}
	got := next("the release's answer", func(l string) bool {
		return strings.HasPrefix(l, "agent: payment release") && !strings.Contains(l, "sent")
	})
	if !regexp.MustCompile(`APPROVED \(approved\) by bob@example.com: .*\[signature verified: decision allow, identity_assurance oidc`).MatchString(got) {
		t.Fatalf("agent printed %q", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo exited with %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not stop")
	}
}

// approvebot demo --config runs the user's own file with the demo sign-in:
// its web users are offered, with a visitor; a file that listens off
// loopback, or names no web user, is refused.
func TestDemoWithConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	listen := freePort(t)
	write := func(name, body string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	own := "listen: " + listen + "\nstore: {path: " + dir + "/a.db}\nsigning: {key_file: " + dir + "/k}\ncallers:\n  - {name: me, token: 0123456789abcdef0123}\n" +
		"approvers:\n  ops:\n    web: {users: [ann@example.com]}\nroutes:\n  - match: {rule_name: r}\n    approvers: [ops]\n"
	nothing := func(string) (string, bool) { return "", false }
	if err := run(context.Background(), bot.SystemClock{}, []string{"demo", "--config", write("public.yaml", strings.Replace(own, listen, "0.0.0.0:0", 1))}, nothing, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "loopback only") {
		t.Errorf("demo on 0.0.0.0: %v", err)
	}
	if err := run(context.Background(), bot.SystemClock{}, []string{"demo", "--config", write("noweb.yaml", strings.Replace(own, "web: {users: [ann@example.com]}", "slack: {channels: [C0X], users: [U0X]}", 1)+"slack: {bot_token: xoxb-1, signing_secret: s}\n")}, nothing, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "no approver group has web users") {
		t.Errorf("demo without web users: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, bot.SystemClock{}, []string{"demo", "--config", write("own.yaml", own)}, nothing, pw, io.Discard)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	out := bufio.NewReader(pr)
	line, err := out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "approvebot listening on http://"+listen) {
		t.Fatalf("demo --config: %q %v", line, err)
	}
	var banner strings.Builder
	for !strings.Contains(banner.String(), "Press Ctrl-C") {
		l, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("banner: %v (%q)", err, banner.String())
		}
		banner.WriteString(l)
	}
	go io.Copy(io.Discard, out)
	for _, want := range []string{"ann@example.com", "Visitor"} {
		if !strings.Contains(banner.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, banner.String())
		}
	}
	b := newBrowser(t)
	if p := b.post("http://"+listen+"/inbox/demo-login", url.Values{"person": {"0"}}); p.status != http.StatusOK || !strings.Contains(p.body, "Signed in as ann@example.com") {
		t.Fatalf("sign-in as ann: %d\n%s", p.status, p.body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("demo exited with %v", err)
	}
}

// lineReader reads the demo's output line by line; the function it returns
// waits, at most 90 s, for the next line that matches, failing the test if
// the demo ends or stays silent first. The channel has the lines not yet
// read, until the output ends.
func lineReader(t *testing.T, out io.Reader, logs fmt.Stringer) (func(what string, match func(string) bool) string, <-chan string) {
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return func(what string, match func(string) bool) string {
		t.Helper()
		timeout := time.After(90 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("demo ended before %s\nlogs:\n%s", what, logs)
				}
				if match(l) {
					return l
				}
			case <-timeout:
				t.Fatalf("demo: no %s\nlogs:\n%s", what, logs)
			}
		}
	}, lines
}
