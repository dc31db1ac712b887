package slack

import (
	"testing"

	"github.com/approvebot/approvebot"
)

// Only well-formed ids become mentions; anything else in a users list is
// named as inert text, so a config value cannot ping a whole channel.
func TestMentions(t *testing.T) {
	got := mentions([]approvebot.Group{
		{Name: "a", Sides: map[string]approvebot.Side{Name: {Users: []string{"U0JANE", "bob@company.com", "U0JANE", "<!channel>@x"}, Groups: []string{"S0OPS", "S0X><!here"}}}},
		{Name: "b", Sides: map[string]approvebot.Side{"teams": {Users: []string{"jane@company.com"}}}},
	})
	want := "<@U0JANE> bob@company.com &lt;!channel&gt;@x <!subteam^S0OPS>"
	if got != want {
		t.Fatalf("mentions = %q, want %q", got, want)
	}
}
