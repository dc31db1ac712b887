package store

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy"
	bolt "go.etcd.io/bbolt"
)

// resolve decides r in the transition Update runs, as the engine does.
func resolve(t *testing.T, s *Bolt, id string) *approvebot.Request {
	t.Helper()
	r, err := s.Update(id, func(r *approvebot.Request) (Change, error) {
		r.Status = approvebot.StatusDenied
		r.Resolution = &approvebot.Resolution{Status: approvebot.StatusDenied, Approver: "system:test", ResolvedAt: t0}
		var err error
		r.Resolution.Digest, err = policy.ResolutionDigest(r)
		if err != nil {
			return Change{}, err
		}
		return Change{Visible: true, Events: []approvebot.Event{
			{Type: approvebot.EventExpired, RequestID: id, At: t0},
			{Type: approvebot.EventResolved, RequestID: id, At: t0},
		}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReceiptIsTheResolvedRecordAndSealedInItsTransaction(t *testing.T) {
	s, _ := openTemp(t, Options{})
	var sealed []string
	s.OnResolved(func(r *approvebot.Request) {
		sealed = append(sealed, r.ID)
		r.Assertion = "signed:" + r.Receipt.AuditHead
	})
	if _, _, err := s.Create(newRequest("a", t0.Add(time.Hour)), requested("a")); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Get("a"); r.Receipt != nil || r.Assertion != "" || len(sealed) != 0 {
		t.Fatalf("a pending request has a receipt or an assertion: %+v", r)
	}
	r := resolve(t, s, "a")
	head, err := s.Head()
	if err != nil {
		t.Fatal(err)
	}
	if r.Receipt == nil || r.Receipt.AuditSeq != 3 || r.Receipt.AuditSeq != head.Seq || r.Receipt.AuditHead != head.Digest {
		t.Fatalf("receipt %+v, head %+v: want the approval_resolved record, record 3", r.Receipt, head)
	}
	stored, _ := s.Get("a")
	if stored.Assertion != "signed:"+head.Digest || stored.Receipt.AuditHead != head.Digest {
		t.Fatalf("what OnResolved set was not stored with the decision: %+v", stored)
	}
	// A later transition of a final request is no new resolution.
	if _, err := s.Update("a", func(r *approvebot.Request) (Change, error) {
		return Change{Visible: true, Events: []approvebot.Event{{Type: approvebot.EventPosted, RequestID: "a", At: t0}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Get("a"); len(sealed) != 1 || again.Receipt.AuditSeq != 3 {
		t.Fatalf("sealed %v, receipt %+v after a later transition", sealed, again.Receipt)
	}
	checkConsistent(t, s)
}

func TestCheckAnchors(t *testing.T) {
	s, path := openTemp(t, Options{})
	if h, err := s.Head(); err != nil || h != (Head{}) {
		t.Fatalf("empty log's head: %+v %v", h, err)
	}
	var heads []Head
	for _, id := range []string{"a", "b", "c"} {
		if _, _, err := s.Create(newRequest(id, t0.Add(time.Hour)), requested(id)); err != nil {
			t.Fatal(err)
		}
		resolve(t, s, id)
		h, err := s.Head()
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, h)
	}
	anchor := func(h Head, src string) Anchor { return Anchor{Head: h, At: t0, Source: src} }
	all := []Anchor{anchor(Head{}, "empty"), anchor(heads[0], "cp 1"), anchor(heads[2], "cp 3"), anchor(heads[1], "cp 2")}
	rep, err := s.CheckAnchors(all)
	if err != nil || rep.Break != nil || rep.Newest.Source != "cp 3" || rep.Head != heads[2] || rep.Anchors != 4 {
		t.Fatalf("untouched log: %+v %v", rep, err)
	}

	s.Close()
	// Cut c's three records off the end and reset the head, as someone with
	// the file can: the chain still verifies, the anchors do not.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		audit := tx.Bucket(bucketAudit)
		for seq := heads[1].Seq + 1; seq <= heads[2].Seq; seq++ {
			if err := audit.Delete(seqKeyOf(seq)); err != nil {
				return err
			}
		}
		if err := audit.SetSequence(heads[1].Seq); err != nil {
			return err
		}
		if err := tx.Bucket(bucketRequests).Delete([]byte("c")); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyAuditHead, []byte(heads[1].Digest))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rep, err := s.Verify(policy.EntryDigest, policy.ResolutionDigest); err != nil || rep.Break != nil {
		t.Fatalf("the cut log no longer verifies on its own (the limitation anchors lift): %+v %v", rep, err)
	}
	rep, err = s.CheckAnchors(all)
	if err != nil || rep.Break == nil || rep.Break.Seq != heads[2].Seq || !strings.Contains(rep.Break.Problem, "missing: the log ends at record 6, but cp 3") {
		t.Fatalf("cut log: %+v %v", rep.Break, err)
	}
	// An anchor whose digest differs: the log was rewritten.
	forged := anchor(Head{Seq: heads[0].Seq, Digest: "sha256:00"}, "cp x")
	rep, err = s.CheckAnchors([]Anchor{anchor(heads[1], "cp 2"), forged})
	if err != nil || rep.Break == nil || rep.Break.Seq != heads[0].Seq || !strings.Contains(rep.Break.Problem, "cp x") || !strings.Contains(rep.Break.Problem, "rewritten or rolled back") {
		t.Fatalf("differing digest: %+v %v", rep.Break, err)
	}
	if rep, err := s.CheckAnchors(all[:2]); err != nil || rep.Break != nil {
		t.Fatalf("anchors the cut log still holds: %+v %v", rep.Break, err)
	}
}

func seqKeyOf(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }
