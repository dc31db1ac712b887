package main

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/teams"
	"github.com/approvebot/approvebot/bot/web"
	"github.com/approvebot/approvebot/intake"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/store"
)

// builder makes requests as the engine would have stored them, so a large
// store can be written directly instead of through hours of HTTP.
type builder struct {
	routed policy.Routed
	now    time.Time
}

// newBuilder reads the benchmark's config (in dir) for the route every
// request takes.
func newBuilder(dir string) (*builder, error) {
	path, err := writeConfig(dir, "http://127.0.0.1:9/api/")
	if err != nil {
		return nil, err
	}
	cfg, err := policy.Load(path, func(string) (string, bool) { return "", false }, policy.Platforms{slack.Platform{}, teams.Platform{}, web.Platform{}})
	if err != nil {
		return nil, err
	}
	sub, err := intake.Parse(body("bench-pre-0"))
	if err != nil {
		return nil, err
	}
	routed, err := cfg.Route(callerName, sub.Fields, sub.Schema)
	if err != nil {
		return nil, err
	}
	return &builder{routed: routed, now: time.Now()}, nil
}

// request builds request i: pending (posted to Slack, deadline a day away,
// so nothing expires during the run) or already timed out.
func (bl *builder) request(i int, pending bool) (*approvebot.Request, []approvebot.Event, error) {
	sub, err := intake.Parse(body(fmt.Sprintf("bench-pre-%d", i)))
	if err != nil {
		return nil, nil, err
	}
	// Ids as the engine makes them for legacy requests: creation time, then
	// random bits.
	now := bl.now.Add(time.Duration(i) * time.Microsecond)
	var id [16]byte
	binary.BigEndian.PutUint64(id[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(id[8:])
	r := &approvebot.Request{
		ID:        "ar_" + hex.EncodeToString(id[:]),
		Schema:    sub.Schema,
		Caller:    callerName,
		Digest:    sub.Digest,
		Fields:    sub.Fields,
		Context:   sub.Context,
		Chain:     bl.routed.Chain,
		CreatedAt: now,
		Deadline:  now.Add(24 * time.Hour).Round(0),
		Status:    approvebot.StatusPending,
		Version:   1,
		Destinations: []approvebot.Destination{{
			Platform: "slack", Channel: channel, Groups: []string{groupName}, State: approvebot.DeliveryPosted,
			Ref:   approvebot.MessageRef{Channel: channel, ID: fmt.Sprintf("%d.%06d", 1600000000+i/1000000, i%1000000)},
			Shown: 1,
		}},
	}
	events := []approvebot.Event{
		event(approvebot.EventRequested, r.ID, now, callerName, map[string]any{"schema": r.Schema, "digest": r.Digest, "fields": r.Fields}),
		event(approvebot.EventPosted, r.ID, now, "", map[string]any{"platform": "slack", "channel": channel, "ref": r.Destinations[0].Ref, "version": 1}),
	}
	if !pending {
		policy.Expire(r, approvebot.StatusTimedOut, "timed out after 3600 s without a decision", now)
		r.Version, r.Destinations[0].Shown = 2, 2
		events = append(events, event(approvebot.EventResolved, r.ID, now, r.Resolution.Approver,
			map[string]any{"resolution": r.Resolution, "status": r.Status}))
	}
	return r, events, nil
}

func event(typ, id string, at time.Time, actor string, detail any) approvebot.Event {
	raw, _ := json.Marshal(detail)
	return approvebot.Event{Type: typ, RequestID: id, At: at, Actor: actor, Detail: raw}
}

// prefill writes total requests into dir's store through the store API, the
// last pending of them still pending, from many writers at once so that they
// share commits.
func prefill(dir string, total, pending int) error {
	bl, err := newBuilder(dir)
	if err != nil {
		return err
	}
	st, err := store.Open(filepath.Join(dir, "approvebot.db"), store.Options{})
	if err != nil {
		return err
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				r, evs, err := bl.request(i, i >= total-pending)
				if err == nil {
					_, _, err = st.Create(r, evs...)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("prefill request %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if err := st.Close(); err != nil && first == nil {
		first = err
	}
	return first
}
