package teams

import (
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/policy/confnode"
)

// The teams section owns its defaults: the Bot Framework's keys, the
// tenant's token endpoint and the pause between threads in a channel.
func TestSectionDefaults(t *testing.T) {
	var n yaml.Node
	doc := "app_id: 00000000-0000-4000-8000-00000000a001\napp_password: pw\ntenant_id: 00000000-0000-4000-8000-0000000000e1\n"
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatal(err)
	}
	r := confnode.NewReader(nil, nil)
	c, _ := Platform{}.ParseSection(r, n.Content[0], policy.File{}).(*Config)
	if r.Failed() || c == nil {
		t.Fatalf("section refused: %v", r.Err())
	}
	if c.OpenIDMetadataURL != DefaultOpenIDMetadataURL || c.TokenURL != DefaultTokenURL("00000000-0000-4000-8000-0000000000e1") || c.ChannelInterval != DefaultChannelInterval {
		t.Fatalf("defaults: %+v", c)
	}
}

// Only members decide, and guests where the side allows them; a listed
// person matches by object id (any case), email or UPN.
func TestMember(t *testing.T) {
	const oid = "6c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
	side := approvebot.Side{Users: []string{oid, "jane@example.com"}}
	guests := side
	guests.AllowGuests = true
	for _, tc := range []struct {
		name string
		side approvebot.Side
		a    approvebot.Approver
		want bool
	}{
		{"object id", side, approvebot.Approver{UserID: oid, Role: approvebot.RoleMember}, true},
		{"object id in upper case", side, approvebot.Approver{UserID: "6C1D2E3F-4A5B-4C6D-8E9F-0A1B2C3D4E5F", Role: approvebot.RoleMember}, true},
		{"email", side, approvebot.Approver{UserID: "x", Email: "Jane@Example.com", Role: approvebot.RoleMember}, true},
		{"upn", side, approvebot.Approver{UserID: "x", UPN: "jane@example.com", Role: approvebot.RoleMember}, true},
		{"unknown role", side, approvebot.Approver{UserID: oid}, false},
		{"guest", side, approvebot.Approver{UserID: oid, Role: approvebot.RoleGuest}, false},
		{"guest allowed", guests, approvebot.Approver{UserID: oid, Role: approvebot.RoleGuest}, true},
		{"not listed", guests, approvebot.Approver{UserID: "someone", Email: "bob@example.com", Role: approvebot.RoleMember}, false},
		{"no user id", side, approvebot.Approver{Email: "jane@example.com", Role: approvebot.RoleMember}, false},
	} {
		if got := (Platform{}).Member(tc.side, tc.a); got != tc.want {
			t.Errorf("%s: Member = %v, want %v", tc.name, got, tc.want)
		}
	}
}
