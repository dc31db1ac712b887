package slack

import (
	"testing"

	"github.com/approvebot/approvebot"
)

// Only well-formed ids become mentions; anything else in a users list is
// named as inert text, so a config value cannot ping a whole channel.
func TestMentions(t *testing.T) {
	got := mentions([]approvebot.Group{
		{Name: "a", Slack: &approvebot.SlackGroup{Users: []string{"U0JANE", "bob@company.com", "U0JANE", "<!channel>@x"}, Usergroups: []string{"S0OPS", "S0X><!here"}}},
		{Name: "b", Teams: &approvebot.TeamsGroup{Users: []string{"jane@company.com"}}},
	})
	want := "<@U0JANE> bob@company.com &lt;!channel&gt;@x <!subteam^S0OPS>"
	if got != want {
		t.Fatalf("mentions = %q, want %q", got, want)
	}
}
