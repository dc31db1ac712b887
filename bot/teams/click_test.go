package teams

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/teams/teamsfake"
)

var jane = teamsfake.From{AadObjectID: "6a2c0000-0000-0000-0000-00000000beef", Name: "Jane Doe"}

func postedThread(t *testing.T, e *env) (approvebot.MessageRef, teamsfake.Thread) {
	t.Helper()
	e.install(t)
	ref, err := e.teams.Post(testCtx(t), testChannelID, testMessage("req-1"))
	if err != nil {
		t.Fatal(err)
	}
	return ref, teamsfake.Thread{ChannelID: ref.Channel, Conversation: ref.Conversation, ActivityID: ref.ID}
}

type invokeAnswer struct {
	StatusCode int             `json:"statusCode"`
	Type       string          `json:"type"`
	Value      json.RawMessage `json:"value"`
}

func TestExecuteClickCounted(t *testing.T) {
	e := newEnv(t)
	ref, thread := postedThread(t, e)
	view := testMessage("req-1")
	view.Actionable = false
	view.Status = approvebot.StatusApproved
	view.Outcome = "Approved by Jane Doe"
	e.decider.result = bot.ClickResult{Counted: true, Decided: true, Message: "Approved.", View: view}

	code, body := e.send(t, e.fake.ExecuteClick(jane, thread, "approve", "req-1", approvebot.Allow))
	if code != http.StatusOK {
		t.Fatalf("HTTP %d %s", code, body)
	}
	var ans invokeAnswer
	if err := json.Unmarshal(body, &ans); err != nil {
		t.Fatalf("invoke answer %s: %v", body, err)
	}
	if ans.StatusCode != 200 || ans.Type != "application/vnd.microsoft.card.adaptive" {
		t.Fatalf("invoke answer %+v", ans)
	}
	want, _ := RenderCard(view)
	assertSameJSON(t, ans.Value, want.JSON)

	ballots, ids := e.decider.calls()
	if len(ballots) != 1 || ids[0] != "req-1" {
		t.Fatalf("decider got %v %v", ballots, ids)
	}
	b := ballots[0]
	wantRef := approvebot.MessageRef{Channel: testChannelID, Conversation: ref.Conversation, ID: ref.ID, ServiceURL: e.fake.ServiceURL()}
	if b.Platform != "teams" || b.Ref != wantRef || b.Decision != approvebot.Allow || b.Assurance != "botframework_jwt" {
		t.Fatalf("ballot %+v, want ref %+v", b, wantRef)
	}
	if b.Approver.Platform != "teams" || b.Approver.Workspace != e.fake.TenantID || b.Approver.UserID != jane.AadObjectID || b.Approver.Name != jane.Name {
		t.Fatalf("approver %+v", b.Approver)
	}
}

func TestExecuteClickRefusedIsPrivate(t *testing.T) {
	e := newEnv(t)
	_, thread := postedThread(t, e)
	e.decider.result = bot.ClickResult{Message: "You are not an approver for this request."}
	code, body := e.send(t, e.fake.ExecuteClick(jane, thread, "deny", "req-1", approvebot.Deny))
	if code != http.StatusOK {
		t.Fatalf("HTTP %d", code)
	}
	var ans invokeAnswer
	_ = json.Unmarshal(body, &ans)
	var text string
	_ = json.Unmarshal(ans.Value, &text)
	if ans.StatusCode != 200 || ans.Type != "application/vnd.microsoft.activity.message" || text != "You are not an approver for this request." {
		t.Fatalf("invoke answer %s", body)
	}
	if ballots, _ := e.decider.calls(); len(ballots) != 1 || ballots[0].Decision != approvebot.Deny {
		t.Fatalf("ballots %+v", ballots)
	}
}

func TestClickWithoutObjectIDRefused(t *testing.T) {
	e := newEnv(t)
	_, thread := postedThread(t, e)
	e.decider.result = bot.ClickResult{Counted: true}
	a := e.fake.ExecuteClick(teamsfake.From{Name: "Guest"}, thread, "approve", "req-1", approvebot.Allow)
	code, body := e.send(t, a)
	var ans invokeAnswer
	_ = json.Unmarshal(body, &ans)
	if code != http.StatusOK || ans.Type != "application/vnd.microsoft.activity.message" {
		t.Fatalf("HTTP %d %s", code, body)
	}
	if ballots, _ := e.decider.calls(); len(ballots) != 0 {
		t.Fatalf("a click without an object id reached the engine: %+v", ballots)
	}
}

func TestSubmitClick(t *testing.T) {
	e := newEnv(t)
	ref, thread := postedThread(t, e)
	e.decider.result = bot.ClickResult{Message: "refused"}
	code, _ := e.send(t, e.fake.SubmitClick(jane, thread, "req-1", approvebot.Deny))
	if code != http.StatusOK {
		t.Fatalf("HTTP %d", code)
	}
	ballots, ids := e.decider.calls()
	if len(ballots) != 1 || ids[0] != "req-1" || ballots[0].Ref.ID != ref.ID || ballots[0].Decision != approvebot.Deny ||
		ballots[0].Approver.UserID != jane.AadObjectID {
		t.Fatalf("ballots %+v", ballots)
	}
}

func TestMalformedClicks(t *testing.T) {
	e := newEnv(t)
	_, thread := postedThread(t, e)
	e.decider.result = bot.ClickResult{Counted: true}
	for name, a := range map[string]teamsfake.Activity{
		"verb contradicts decision": e.fake.ExecuteClick(jane, thread, "approve", "req-1", approvebot.Deny),
		"unknown decision":          e.fake.ExecuteClick(jane, thread, "approve", "req-1", "maybe"),
		"empty request id":          e.fake.SubmitClick(jane, thread, "", approvebot.Allow),
	} {
		if code, body := e.send(t, a); code != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d %s, want 400", name, code, body)
		}
	}
	if ballots, _ := e.decider.calls(); len(ballots) != 0 {
		t.Fatalf("malformed clicks reached the engine: %+v", ballots)
	}
}

func TestOtherActivitiesAnswered(t *testing.T) {
	e := newEnv(t)
	_, thread := postedThread(t, e)
	msg := e.fake.SubmitClick(jane, thread, "x", approvebot.Allow)
	delete(msg, "value")
	msg["text"] = "hello bot"
	if code, _ := e.send(t, msg); code != http.StatusOK {
		t.Fatalf("plain message: HTTP %d", code)
	}
	other := e.fake.ExecuteClick(jane, thread, "approve", "req-1", approvebot.Allow)
	other["name"] = "composeExtension/query"
	if code, _ := e.send(t, other); code != http.StatusNotImplemented {
		t.Fatalf("unknown invoke: HTTP %d", code)
	}
	if ballots, _ := e.decider.calls(); len(ballots) != 0 {
		t.Fatalf("ballots %+v", ballots)
	}
}
