package slack

import (
	"testing"

	"github.com/approvebot/approvebot"
)

// A Slack side admits a listed user id exactly, a listed email in any case,
// or a member of a listed user group.
func TestMember(t *testing.T) {
	side := approvebot.Side{Users: []string{"U0JANE", "bob@example.com"}, Groups: []string{"S0OPS"}}
	for _, tc := range []struct {
		name string
		a    approvebot.Approver
		want bool
	}{
		{"user id", approvebot.Approver{UserID: "U0JANE"}, true},
		{"user id in another case", approvebot.Approver{UserID: "u0jane"}, false},
		{"email", approvebot.Approver{UserID: "U0BOB", Email: "Bob@Example.com"}, true},
		{"user group", approvebot.Approver{UserID: "U0ANN", Usergroups: []string{"S0OPS"}}, true},
		{"other user group", approvebot.Approver{UserID: "U0ANN", Usergroups: []string{"S0DEV"}}, false},
		{"nobody listed", approvebot.Approver{UserID: "U0EVE", Email: "eve@example.com"}, false},
		{"no user id", approvebot.Approver{Email: "bob@example.com"}, false},
	} {
		if got := (Platform{}).Member(side, tc.a); got != tc.want {
			t.Errorf("%s: Member = %v, want %v", tc.name, got, tc.want)
		}
	}
}
