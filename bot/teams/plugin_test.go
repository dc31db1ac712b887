package teams

import (
	"testing"

	"github.com/approvebot/approvebot/bot"
)

// Where the bot is installed was kept in the store's "conversations" before
// each platform had a place of its own: asking under any other name would
// lose every installation an upgraded service knew of.
func TestDataKeptWhereEarlierReleasesKeptIt(t *testing.T) {
	if got := bot.DataName(Platform{}); got != "conversations" {
		t.Fatalf("Teams' data is asked for as %q, want conversations", got)
	}
}
