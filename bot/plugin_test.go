package bot

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/policy/confnode"
	"github.com/approvebot/approvebot/store"
)

// stubPlugin is a platform whose section is a string; it starts when its
// section is there, failing when the section says "fail".
type stubPlugin struct {
	name    string
	started []*stubRunning
	data    []store.KV
}

type stubRunning struct {
	Running // only Close is called
	closed  bool
}

func (r *stubRunning) Close() { r.closed = true }

func (p *stubPlugin) Name() string { return p.name }
func (p *stubPlugin) ParseSection(*confnode.Reader, *yaml.Node, policy.File) any {
	return nil
}
func (p *stubPlugin) ParseSide(*confnode.Reader, *yaml.Node, string, any, policy.File) (approvebot.Side, bool) {
	return approvebot.Side{}, false
}
func (p *stubPlugin) Member(approvebot.Side, approvebot.Approver) bool { return false }
func (p *stubPlugin) Deciders(approvebot.Side) ([]string, bool)        { return nil, false }
func (p *stubPlugin) DescribeSection(any) string                       { return p.name }
func (p *stubPlugin) DescribeSide(approvebot.Side) string              { return "" }

func (p *stubPlugin) Start(cfg *policy.Config, env Env) (Running, error) {
	p.data = append(p.data, env.Data)
	switch cfg.Section(p.name) {
	case nil:
		return nil, nil
	case "fail":
		return nil, fmt.Errorf("%s: cannot start", p.name)
	}
	r := &stubRunning{}
	p.started = append(p.started, r)
	return r, nil
}

// socketed adds to the startup line and says which changes need a restart.
type socketed struct{ *stubPlugin }

func (socketed) StartLog(r Running) []slog.Attr {
	return []slog.Attr{slog.Bool("a_socket", r != nil)}
}

func (socketed) RestartOnly(cur, next *policy.Config) (keys, notes []string) {
	if cur.Section("a") != next.Section("a") {
		return []string{"a (other than its secret)"}, []string{"a note"}
	}
	return nil, nil
}

type namedKV struct {
	store.KV
	name string
}

func config(sections map[string]any) *policy.Config { return &policy.Config{Sections: sections} }

func TestPluginsStart(t *testing.T) {
	a, b, c := &stubPlugin{name: "a"}, &stubPlugin{name: "b"}, &stubPlugin{name: "c"}
	ps := Plugins{a, b, c}
	data := func(name string) store.KV { return namedKV{name: name} }
	running, err := ps.Start(config(map[string]any{"a": "on", "c": "on"}), Env{}, data)
	if err != nil {
		t.Fatal(err)
	}
	if running[0] == nil || running[1] != nil || running[2] == nil {
		t.Fatalf("running %v: want a and c", running)
	}
	for _, p := range ps {
		if d := p.(*stubPlugin).data; len(d) != 1 || d[0].(namedKV).name != p.Name() {
			t.Errorf("%s started with data %v, want its own", p.Name(), d)
		}
	}

	// A platform that cannot start takes those started before it down.
	_, err = ps.Start(config(map[string]any{"a": "on", "b": "fail", "c": "on"}), Env{}, data)
	if err == nil || err.Error() != "b: cannot start" {
		t.Fatalf("start with b failing: %v", err)
	}
	if !a.started[1].closed {
		t.Error("a, started before b failed, was not closed")
	}
	if len(c.started) != 1 {
		t.Error("c was started after b failed")
	}
}

func TestPluginsStartLog(t *testing.T) {
	a := socketed{&stubPlugin{name: "a"}}
	ps := Plugins{a, &stubPlugin{name: "b"}}
	var got []string
	for _, attr := range ps.StartLog([]Running{nil, &stubRunning{}}) {
		a := attr.(slog.Attr)
		got = append(got, a.String())
	}
	if want := []string{"a=false", "a_socket=false", "b=true"}; !slices.Equal(got, want) {
		t.Fatalf("startup attributes %v, want %v", got, want)
	}
}

// Without a RestartChecker, any change to a platform's section, its
// coming or its going, is for a restart; with one, the platform says.
func TestPluginsRestartOnly(t *testing.T) {
	type section struct{ Secret, URL string }
	ps := Plugins{socketed{&stubPlugin{name: "a"}}, &stubPlugin{name: "b"}}
	for _, tc := range []struct {
		name      string
		cur, next map[string]any
		keys      []string
		notes     []string
	}{
		{"nothing", map[string]any{"b": &section{URL: "u"}}, map[string]any{"b": &section{URL: "u"}}, nil, nil},
		{"changed", map[string]any{"b": &section{URL: "u"}}, map[string]any{"b": &section{URL: "v"}}, []string{"b"}, nil},
		{"added", nil, map[string]any{"b": &section{}}, []string{"b"}, nil},
		{"removed", map[string]any{"b": &section{}}, nil, []string{"b"}, nil},
		{"its own", map[string]any{"a": "x"}, map[string]any{"a": "y", "b": &section{}}, []string{"a (other than its secret)", "b"}, []string{"a note"}},
	} {
		keys, notes := ps.RestartOnly(config(tc.cur), config(tc.next))
		if !slices.Equal(keys, tc.keys) || !slices.Equal(notes, tc.notes) {
			t.Errorf("%s: %v %v, want %v %v", tc.name, keys, notes, tc.keys, tc.notes)
		}
	}
}
