package store

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
)

// benchRequest is a request of about the size agents send (800-900 bytes
// stored).
func benchRequest(i int) *approvebot.Request {
	r := newRequest(fmt.Sprintf("req-%012d", i), t0.Add(time.Duration(i)*time.Second+time.Hour))
	r.Context = json.RawMessage(`{"amount":1250,"currency":"EUR","beneficiary":"ACME Supplies GmbH","iban":"DE89370400440532013000","reason":"invoice 2026-0412, second instalment","ticket":"OPS-4412"}`)
	r.Digest = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	return r
}

// fill creates n pending requests from many writers, sharing commits.
func fill(b *testing.B, s *Bolt, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				r := benchRequest(i)
				if _, _, err := s.Create(r, requested(r.ID)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkDecide is a decision and the two message updates it causes, one
// after another, with n requests pending: what the engine asks of the store
// between a click and the agent's answer, and right after. Commits are not
// synced, so that what is timed is the store's work, not the disk's
// (approvebench measures the whole, fsync included).
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprint("pending=", n), func(b *testing.B) {
			s, err := Open(b.TempDir()+"/approvebot.db", Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			fill(b, s, n+b.N)
			s.db.NoSync = true
			b.ResetTimer()
			var decide, deliver time.Duration
			for i := 0; i < b.N; i++ {
				id := fmt.Sprintf("req-%012d", n/2+i)
				t := time.Now()
				_, err := s.Update(id, func(r *approvebot.Request) (Change, error) {
					r.Status = approvebot.StatusApproved
					r.Entries = append(r.Entries, approvebot.Entry{Decision: "approve"})
					r.Resolution = &approvebot.Resolution{Outcome: "allow", Status: approvebot.StatusApproved, Approver: "U1", ResolvedAt: t0}
					r.Thread = append(r.Thread, approvebot.Note{Kind: approvebot.NoteOutcome, Text: "approved by U1", At: t0, Stage: -1})
					return Change{Visible: true, Events: []approvebot.Event{
						{Type: approvebot.EventEntry, RequestID: id, At: t0, Actor: "U1", Detail: json.RawMessage(`{"entry":{"decision":"approve"},"group":"ops"}`)},
						{Type: approvebot.EventResolved, RequestID: id, At: t0, Actor: "U1", Detail: json.RawMessage(`{"resolution":{"outcome":"allow"},"status":"approved"}`)},
					}}, nil
				})
				if err != nil {
					b.Fatal(err)
				}
				decide += time.Since(t)
				t = time.Now()
				for d := range 2 {
					if _, _, err := s.Deliver(JobKey{ID: id, Dest: d}, nil, func(r *approvebot.Request, d *approvebot.Destination) (Change, error) {
						d.State, d.Shown, d.Replied = approvebot.DeliveryPosted, r.Version, len(r.Thread)
						return Change{}, nil
					}); err != nil {
						b.Fatal(err)
					}
				}
				deliver += time.Since(t)
			}
			b.ReportMetric(float64(decide.Microseconds())/float64(b.N), "decide-µs/op")
			b.ReportMetric(float64(deliver.Microseconds())/float64(b.N)/2, "deliver-µs/op")
		})
	}
}

// BenchmarkCreate is intake's share of the store: creates from 256 writers,
// commits not synced.
func BenchmarkCreate(b *testing.B) {
	s, err := Open(b.TempDir()+"/approvebot.db", Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.db.NoSync = true
	var next atomic.Int64
	b.SetParallelism(128)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := benchRequest(int(next.Add(1)))
			if _, _, err := s.Create(r, requested(r.ID)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDecodeState is reading the state of a pending request shown in
// two channels, as Get, Refresh and Deliver do for every call.
func BenchmarkDecodeState(b *testing.B) {
	r := benchRequest(1)
	for i := range r.Destinations {
		d := &r.Destinations[i]
		d.State, d.Shown = approvebot.DeliveryPosted, r.Version
		d.Ref = approvebot.MessageRef{Channel: d.Channel, ID: fmt.Sprintf("1767225600.00%04d", i)}
	}
	st, err := encodeState(r)
	if err != nil {
		b.Fatal(err)
	}
	id := []byte(r.ID)
	b.ReportAllocs()
	for b.Loop() {
		if err := decodeState(id, st, headOf(r).request()); err != nil {
			b.Fatal(err)
		}
	}
}
