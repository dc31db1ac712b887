package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The audit log's records chain to each other, so changing one is found; but
// whoever can write the file can also cut records off its end, or put back
// an older copy of the whole file, and what is left still chains. An anchor
// is a place in the log vouched for from outside the file (a signed
// checkpoint kept on another volume, or a receipt an agent kept): the log
// must still hold that record, unchanged, and must reach at least that far.

// Anchor is a place in the audit log vouched for from outside the file.
type Anchor struct {
	Head
	At     time.Time `json:"at"`     // when it was signed
	Source string    `json:"source"` // where it was read, for messages: "checkpoints.jsonl line 3"
}

// AnchorReport is the outcome of holding anchors against the log.
type AnchorReport struct {
	Anchors int     `json:"anchors"`
	Newest  *Anchor `json:"newest,omitempty"` // the anchor furthest along the log
	Head    Head    `json:"head"`             // the log's last record
	// BeforeSeal counts the anchors of records retention removed: they
	// precede the seal the log begins after, and can be checked only
	// against the records exported before removal.
	BeforeSeal int    `json:"before_seal,omitempty"`
	Break      *Break `json:"break,omitempty"`
}

// AfterSeal splits off the anchors of records a retention seal at seal
// removed (nil seal: none were removed). The seal's own record stays to be
// checked: the log's reader yields the seal first.
func AfterSeal(seal *Head, anchors []Anchor) (kept []Anchor, before int) {
	if seal == nil {
		return anchors, 0
	}
	for _, a := range anchors {
		if a.Seq < seal.Seq {
			before++
			continue
		}
		kept = append(kept, a)
	}
	return kept, before
}

// CheckAnchors holds anchors against the log that records yields, in order
// of sequence. Every anchored record must be in the log with the anchored
// digest, and the log must reach the newest anchor; the first anchor (by
// sequence) that fails is the break.
func CheckAnchors(anchors []Anchor, records func(yield func(Head) error) error) (AnchorReport, error) {
	rep := AnchorReport{Anchors: len(anchors)}
	bySeq := map[uint64][]int{}
	for i, a := range anchors {
		if rep.Newest == nil || a.Seq > rep.Newest.Seq || (a.Seq == rep.Newest.Seq && a.At.After(rep.Newest.At)) {
			rep.Newest = &anchors[i]
		}
		if a.Seq > 0 { // an anchor of an empty log vouches for nothing
			bySeq[a.Seq] = append(bySeq[a.Seq], i)
		}
	}
	type problem struct {
		seq  uint64
		text string
	}
	var problems []problem
	err := records(func(h Head) error {
		rep.Head = h
		for _, i := range bySeq[h.Seq] {
			a := anchors[i]
			if a.Digest != h.Digest {
				problems = append(problems, problem{h.Seq, fmt.Sprintf(
					"digest %s, but %s (signed %s) vouches for %s: the log was rewritten or rolled back",
					h.Digest, a.Source, stamp(a.At), a.Digest)})
			}
		}
		delete(bySeq, h.Seq)
		return nil
	})
	if err != nil {
		return rep, err
	}
	for seq, idx := range bySeq {
		a := anchors[idx[0]]
		problems = append(problems, problem{seq, fmt.Sprintf(
			"missing: the log ends at record %d, but %s (signed %s) vouches for record %d: records were removed from the end or an older copy of the file was put back",
			rep.Head.Seq, a.Source, stamp(a.At), seq)})
	}
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool { return problems[i].seq < problems[j].seq })
		rep.Break = &Break{Seq: problems[0].seq, Problem: problems[0].text}
	}
	return rep, nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "at an unknown time"
	}
	return "at " + t.UTC().Format(time.RFC3339)
}

// CheckAnchors holds anchors against the store's audit log.
func (s *Bolt) CheckAnchors(anchors []Anchor) (AnchorReport, error) {
	var rep AnchorReport
	err := s.db.View(func(tx *bolt.Tx) error {
		seal, err := sealOf(tx)
		if err != nil {
			return err
		}
		kept, before := AfterSeal(seal, anchors)
		rep, err = CheckAnchors(kept, func(yield func(Head) error) error {
			if seal != nil {
				if err := yield(*seal); err != nil {
					return err
				}
			}
			c := tx.Bucket(bucketAudit).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				var rec struct {
					Digest string `json:"digest"`
				}
				if err := json.Unmarshal(v, &rec); err != nil {
					return fmt.Errorf("audit record %d: corrupt: %w", binary.BigEndian.Uint64(k), err)
				}
				if err := yield(Head{Seq: keySeq(k), Digest: rec.Digest}); err != nil {
					return err
				}
			}
			return nil
		})
		rep.Anchors += before
		rep.BeforeSeal = before
		return err
	})
	return rep, err
}
