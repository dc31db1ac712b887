package slack

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

func TestInspector(t *testing.T) {
	f := newFake(t)
	f.SetScopes("channels:read", "users:read", "users:read.email", "usergroups:read")
	f.AddChannel("C1", "deploys", false, true)
	f.AddChannel("C2", "elsewhere", false, false)
	f.RemoveChannel("C3")
	f.AddUser("U1", "Ann", "ann@example.com")
	f.AddBot("B1", "robot")
	f.AddUsergroup("S1", "U1")
	in := NewInspector(testToken, f.URL(), &http.Client{Timeout: 10 * time.Second})
	ctx := wait(t)

	scopes, team, err := in.AuthTest(ctx)
	if err != nil || !slices.Equal(scopes, []string{"channels:read", "users:read", "users:read.email", "usergroups:read"}) || team == "" {
		t.Errorf("AuthTest = %v, %q, %v; want the scopes set and a team", scopes, team, err)
	}
	if _, _, err := NewInspector("xoxb-wrong", f.URL(), http.DefaultClient).AuthTest(ctx); err == nil || err.Error() != "auth.test: invalid_auth" {
		t.Errorf("AuthTest with a wrong token: %v, want auth.test: invalid_auth", err)
	}

	channels := []struct {
		id   string
		want ChannelState
		code string
	}{
		{"C1", ChannelState{Name: "deploys", Member: true}, ""},
		{"C2", ChannelState{Name: "elsewhere"}, ""},
		{"C3", ChannelState{}, "channel_not_found"},
	}
	for _, c := range channels {
		got, err := in.Channel(ctx, c.id)
		if got != c.want || ErrorCode(err) != c.code || (err == nil) != (c.code == "") {
			t.Errorf("Channel(%s) = %+v, %v; want %+v, code %q", c.id, got, err, c.want, c.code)
		}
	}

	people := []struct {
		who  string
		want PersonState
		code string
	}{
		{"U1", PersonState{UserID: "U1"}, ""},
		{"ann@example.com", PersonState{UserID: "U1"}, ""},
		{"B1", PersonState{UserID: "B1", Bot: true}, ""},
		{"nobody@example.com", PersonState{}, "users_not_found"},
	}
	for _, p := range people {
		got, err := in.Person(ctx, p.who)
		if got != p.want || ErrorCode(err) != p.code || (err == nil) != (p.code == "") {
			t.Errorf("Person(%s) = %+v, %v; want %+v, code %q", p.who, got, err, p.want, p.code)
		}
	}

	if m, err := in.UsergroupMembers(ctx, "S1"); err != nil || !slices.Equal(m, []string{"U1"}) {
		t.Errorf("UsergroupMembers(S1) = %v, %v; want [U1]", m, err)
	}
	if _, err := in.UsergroupMembers(ctx, "S9"); ErrorCode(err) != "no_such_subteam" {
		t.Errorf("UsergroupMembers(S9): %v, want no_such_subteam", err)
	}
}
