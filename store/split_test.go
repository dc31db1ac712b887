package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy"
	bolt "go.etcd.io/bbolt"
)

// Every field of a request is stored in exactly one of its two records:
// a field added to approvebot.Request and to neither would be lost at the
// first transition.
func TestRecordsHoldEveryField(t *testing.T) {
	tags := func(v any) map[string]bool {
		out := map[string]bool{}
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			out[name] = true
		}
		return out
	}
	head, state := tags(recordHead{}), tags(recordState{})
	for name := range head {
		if state[name] {
			t.Errorf("json field %q is in both records", name)
		}
	}
	rt := reflect.TypeOf(approvebot.Request{})
	for i := range rt.NumField() {
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !head[name] && !state[name] {
			t.Errorf("Request.%s (json %q) is stored in neither record", f.Name, name)
		}
		hf, inHead := reflect.TypeOf(recordHead{}).FieldByName(f.Name)
		sf, inState := reflect.TypeOf(recordState{}).FieldByName(f.Name)
		if (inHead && hf.Tag != f.Tag) || (inState && sf.Tag != f.Tag) {
			t.Errorf("Request.%s is stored under another tag than it has", f.Name)
		}
	}
	if len(head)+len(state) != rt.NumField() {
		t.Errorf("records hold %d fields, Request has %d", len(head)+len(state), rt.NumField())
	}
}

// fullRequest sets every field, so a round trip shows any that is lost.
func fullRequest(id string) *approvebot.Request {
	r := newRequest(id, t0.Add(time.Hour))
	r.IdempotencyKey, r.BodyDigest = "idem-"+id, "sha256:body"
	r.Context, r.ActionBinding = json.RawMessage(`{"amount":12}`), json.RawMessage(`{"op":"x"}`)
	r.Stage, r.Version, r.Reminded = 1, 4, 2
	r.Entries = []approvebot.Entry{{ChainEntryID: "e1", Decision: approvebot.Allow}}
	r.Thread = []approvebot.Note{{Kind: approvebot.NoteVote, Text: "v", At: t0, Stage: -1}}
	r.Nudge = t0.Add(time.Minute)
	r.Escalations = []approvebot.Escalated{{}}
	r.Receipt, r.Assertion = &approvebot.Receipt{AuditSeq: 3, AuditHead: "h"}, "signed"
	r.Resolution = &approvebot.Resolution{Outcome: approvebot.Allow, Status: approvebot.StatusApproved, ResolvedAt: t0}
	return r
}

// A file of schema 2 holds each request whole in one record: opening it
// splits every record (across several of the migration's batches), and
// each request reads back as it was, verifies, and takes transitions.
func TestSplitRecordsMigration(t *testing.T) {
	s, path := openTemp(t, Options{})
	const n = 2500
	want := map[string][]byte{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketStates); err != nil {
			return err
		}
		var err error
		for i := range n {
			r := fullRequest(fmt.Sprintf("r%05d", i))
			r.Entries[0].EntryDigest = policy.EntryDigest(r.Entries[0])
			r.Resolution.FinalEntryDigest = r.Entries[0].EntryDigest
			if r.Resolution.Digest, err = policy.ResolutionDigest(r); err != nil {
				return err
			}
			if i%2 == 0 {
				r.Status, r.Resolution, r.Receipt, r.Assertion, r.Nudge = approvebot.StatusPending, nil, nil, "", time.Time{}
			}
			whole, err := json.Marshal(r)
			if err != nil {
				return err
			}
			want[r.ID] = whole
			if err := tx.Bucket(bucketRequests).Put([]byte(r.ID), whole); err != nil {
				return err
			}
		}
		return putSchema(tx.Bucket(bucketMeta), 2)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("a read-only open of a schema 2 file: %v", err)
	}
	if r, err := ro.Get("r00001"); err != nil || !rewritesTo(r, want["r00001"]) {
		t.Fatalf("read-only get of a schema 2 record: %+v, %v", r, err)
	}
	ro.Close()

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keySchema)); v != schemaVersion {
			t.Errorf("schema %d after the migration, want %d", v, schemaVersion)
		}
		if got := tx.Bucket(bucketStates).Stats().KeyN; got != n {
			t.Errorf("%d state records after the migration, want %d", got, n)
		}
		return tx.Bucket(bucketRequests).ForEach(func(k, v []byte) error {
			if strings.Contains(string(v), `"status"`) {
				t.Errorf("request %s still holds its state in its first record: %s", k, v)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	if err := s.Each(func(r *approvebot.Request) error {
		seen++
		if !rewritesTo(r, want[r.ID]) {
			b, _ := json.Marshal(r)
			t.Errorf("request %s after the migration:\n%s\nwant\n%s", r.ID, b, want[r.ID])
		}
		return nil
	}); err != nil || seen != n {
		t.Fatalf("each after the migration: %d of %d, %v", seen, n, err)
	}
	if rep, err := s.Verify(policy.EntryDigest, policy.ResolutionDigest); err != nil || rep.Break != nil {
		t.Fatalf("verify after the migration: %v %+v", err, rep.Break)
	}
	if _, err := s.Update("r00000", func(r *approvebot.Request) (Change, error) {
		r.Status = approvebot.StatusDenied
		return Change{Visible: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get("r00000"); err != nil || got.Status != approvebot.StatusDenied || got.Fields.Action != "transfer r00000" || string(got.Context) != `{"amount":12}` {
		t.Fatalf("after a transition of a migrated request: %+v, %v", got, err)
	}
}
