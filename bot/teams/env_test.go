package teams

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/teams/teamsfake"
	"github.com/approvebot/approvebot/store"
)

// openStore opens a real bbolt store in the test's temporary directory: the
// adapter keeps its conversation references there in production too.
func openStore(t *testing.T) *store.Bolt {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "approvebot.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// recordingDecider is the engine's side of a click, recording ballots.
type recordingDecider struct {
	mu      sync.Mutex
	ballots []approvebot.Ballot
	ids     []string
	result  bot.ClickResult
}

func (d *recordingDecider) Click(_ context.Context, b approvebot.Ballot, requestID string) bot.ClickResult {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ballots = append(d.ballots, b)
	d.ids = append(d.ids, requestID)
	return d.result
}

func (d *recordingDecider) calls() ([]approvebot.Ballot, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]approvebot.Ballot(nil), d.ballots...), append([]string(nil), d.ids...)
}

type env struct {
	fake    *teamsfake.Fake
	teams   *Teams
	store   *store.Bolt
	clock   *bot.ManualClock
	decider *recordingDecider
	srv     *httptest.Server
}

const (
	testTeamID    = "19:team-general@thread.tacv2"
	testTeamName  = "Payments"
	testChannelID = "19:approvals@thread.tacv2"
)

var testAdmin = teamsfake.From{AadObjectID: "0f0f0f0f-0000-0000-0000-000000000001", Name: "Team Admin"}

func newEnv(t *testing.T) *env {
	t.Helper()
	f := teamsfake.New(t)
	e := &env{fake: f, store: openStore(t), clock: bot.NewManualClock(time.Now()), decider: &recordingDecider{}}
	tm, err := New(Config{
		AppID: f.AppID, AppPassword: f.AppPassword, TenantID: f.TenantID,
		OpenIDMetadataURL: f.MetadataURL(), TokenURL: f.TokenURL(),
		HTTPClient:    f.Client(),
		Conversations: e.store.PlatformData(Name),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Clock:         e.clock,
		// Pacing has its own test; elsewhere it would only slow bursts down.
		ChannelInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.teams = tm
	e.srv = httptest.NewServer(tm.Handler(e.decider))
	t.Cleanup(e.srv.Close)
	return e
}

// send signs activity and posts it to the messaging endpoint.
func (e *env) send(t *testing.T, activity any, opts ...teamsfake.SignOption) (int, []byte) {
	t.Helper()
	body, header, err := e.fake.SignActivity(activity, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e.sendRaw(t, body, header)
}

func (e *env) sendRaw(t *testing.T, body []byte, header http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/teams/messages", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// install adds the bot to the test team and a second channel.
func (e *env) install(t *testing.T) {
	t.Helper()
	if code, body := e.send(t, e.fake.BotAddedToTeam(testTeamID, testTeamName, testAdmin)); code != http.StatusOK {
		t.Fatalf("install: HTTP %d %s", code, body)
	}
	if code, body := e.send(t, e.fake.ChannelEvent("channelCreated", testTeamID, testTeamName, testChannelID, "approvals")); code != http.StatusOK {
		t.Fatalf("channelCreated: HTTP %d %s", code, body)
	}
}

func testMessage(id string) approvebot.Message {
	return approvebot.Message{
		RequestID:  id,
		Title:      "Approval needed: transfer",
		Fields:     []approvebot.Field{{Label: "Agent", Value: "payments-bot"}, {Label: "Action", Value: "transfer"}},
		Context:    []approvebot.Field{{Label: "amount", Value: "1200.00 EUR"}},
		Status:     approvebot.StatusPending,
		Actionable: true,
		Deadline:   time.Date(2026, 3, 1, 12, 5, 0, 0, time.UTC),
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
