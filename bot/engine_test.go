package bot

import (
	"testing"

	"github.com/approvebot/approvebot"
)

func TestRequestRoutesAndPosts(t *testing.T) {
	rg := newRig(t)
	r := rg.submit("both")
	if r.Status != approvebot.StatusPending {
		t.Fatalf("status %s, want pending", r.Status)
	}
	posts := rg.slack.waitCalls(t, "post", 2)
	got := map[string]bool{}
	for _, p := range posts {
		got[p.Channel] = true
	}
	if !got["C0OPS"] || !got["C0SEC"] {
		t.Fatalf("posted to %v, want C0OPS and C0SEC", got)
	}
	rg.waitRecorded(r.ID, 2)
}
