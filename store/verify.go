package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/approvebot/approvebot"
	bolt "go.etcd.io/bbolt"
)

// Break is the first place where the audit trail does not add up.
type Break struct {
	Seq       uint64 `json:"seq,omitempty"`        // audit record, when the log is broken
	RequestID string `json:"request_id,omitempty"` // request, when its chain is broken
	Problem   string `json:"problem"`
}

func (b *Break) Error() string {
	if b.RequestID != "" && b.Seq == 0 {
		return fmt.Sprintf("request %s: %s", b.RequestID, b.Problem)
	}
	return fmt.Sprintf("audit record %d: %s", b.Seq, b.Problem)
}

// VerifyReport is the outcome of a full check.
type VerifyReport struct {
	Records  int    `json:"records"`
	Requests int    `json:"requests"`
	Entries  int    `json:"entries"`
	Head     string `json:"head"`
	// Seal is the retention seal the log begins after (none when no
	// records were ever removed): a signed checkpoint line, whose signature
	// the caller checks (Verify cannot: it has no key).
	Seal  json.RawMessage `json:"seal,omitempty"`
	Break *Break          `json:"break,omitempty"`
}

// EntryDigester recomputes a chain entry's digest; ResolutionDigester a
// resolution's. They come from policy, which defines the digests.
type (
	EntryDigester      func(approvebot.Entry) string
	ResolutionDigester func(*approvebot.Request) (string, error)
)

// Verify recomputes every audit record's digest and link, then every
// request's chain entries and resolution, and reports the first break.
func (s *Bolt) Verify(entryDigest EntryDigester, resolutionDigest ResolutionDigester) (VerifyReport, error) {
	var rep VerifyReport
	err := s.view(func(tx *bolt.Tx) error {
		prev := ""
		var expectSeq uint64 = 1
		// After retention the log begins after the seal: its first record
		// links to the sealed digest.
		if raw := tx.Bucket(bucketMeta).Get(keyAuditSeal); raw != nil {
			rep.Seal = bytes.Clone(raw)
			seal, err := parseSeal(raw)
			if err != nil {
				rep.Break = &Break{Problem: err.Error()}
				return nil
			}
			prev, expectSeq = seal.Digest, seal.Seq+1
		}
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			rep.Records++
			var rec Record
			if err := json.Unmarshal(v, &rec); err != nil {
				rep.Break = &Break{Seq: expectSeq, Problem: "record is not valid JSON"}
				return nil
			}
			if rec.Seq != expectSeq || keySeq(k) != expectSeq {
				problem := fmt.Sprintf("sequence gap: found record %d", rec.Seq)
				if rep.Records == 1 && rep.Seal == nil {
					problem += " first, and no retention seal says why the records before it are gone"
				} else if rep.Records == 1 {
					problem += " first, but the retention seal ends at record " + fmt.Sprint(expectSeq-1)
				}
				rep.Break = &Break{Seq: expectSeq, Problem: problem}
				return nil
			}
			// The digest covers the record as decoded, and decoding forgives
			// (key case, unknown keys): the stored bytes must be exactly what
			// approvebot wrote, since export hands them on as they are.
			if !rewritesTo(&rec, v) {
				rep.Break = &Break{Seq: rec.Seq, Problem: "stored bytes differ from the record approvebot wrote"}
				return nil
			}
			if rec.Prev != prev {
				problem := "link to the previous record does not match its digest"
				if rep.Records == 1 && rep.Seal != nil {
					problem = "link to the previous record does not match the digest the retention seal vouches for"
				}
				rep.Break = &Break{Seq: rec.Seq, Problem: problem}
				return nil
			}
			d, err := RecordDigest(rec)
			if err != nil || d != rec.Digest {
				rep.Break = &Break{Seq: rec.Seq, Problem: "digest does not match the record's content"}
				return nil
			}
			prev = rec.Digest
			expectSeq++
		}
		rep.Head = prev
		if head := string(tx.Bucket(bucketMeta).Get(keyAuditHead)); head != prev {
			rep.Break = &Break{Seq: expectSeq - 1, Problem: "the stored head does not match the last record (records removed at the end?)"}
			return nil
		}
		return tx.Bucket(bucketRequests).ForEach(func(k, v []byte) error {
			rep.Requests++
			var r approvebot.Request
			if json.Unmarshal(v, &r) != nil {
				rep.Break = &Break{RequestID: string(k), Problem: "record is not valid JSON"}
				return errStop
			}
			var written bool
			if states := tx.Bucket(bucketStates); states == nil {
				written = rewritesTo(&r, v) // a file of schema 2, read as it is
			} else {
				state := states.Get(k)
				if state == nil || json.Unmarshal(state, &r) != nil {
					rep.Break = &Break{RequestID: string(k), Problem: "state record is missing or not valid JSON"}
					return errStop
				}
				written = rewritesTo(headOf(&r), v) && rewritesTo(stateOf(&r), state)
			}
			if string(k) != r.ID || !written {
				rep.Break = &Break{RequestID: string(k), Problem: "stored bytes differ from the record approvebot wrote"}
				return errStop
			}
			prevEntry := ""
			for i, e := range r.Entries {
				rep.Entries++
				if e.PreviousEntryDigest != prevEntry {
					rep.Break = &Break{RequestID: r.ID, Problem: fmt.Sprintf("chain entry %d: previous_entry_digest does not link to entry %d", i+1, i)}
					return errStop
				}
				if entryDigest(e) != e.EntryDigest {
					rep.Break = &Break{RequestID: r.ID, Problem: fmt.Sprintf("chain entry %d: entry_digest does not match its content", i+1)}
					return errStop
				}
				prevEntry = e.EntryDigest
			}
			if r.Resolution != nil {
				if r.Resolution.FinalEntryDigest != prevEntry {
					rep.Break = &Break{RequestID: r.ID, Problem: "resolution: final_entry_digest is not the last entry's digest"}
					return errStop
				}
				if d, err := resolutionDigest(&r); err != nil || d != r.Resolution.Digest {
					rep.Break = &Break{RequestID: r.ID, Problem: "resolution: digest does not match its content"}
					return errStop
				}
			}
			return nil
		})
	})
	if err == errStop {
		err = nil
	}
	return rep, err
}

var errStop = fmt.Errorf("stop")

// rewritesTo reports whether v, decoded, encodes back to exactly stored: the
// store writes every record with json.Marshal, which is deterministic.
func rewritesTo(v any, stored []byte) bool {
	b, err := json.Marshal(v)
	return err == nil && bytes.Equal(b, stored)
}

func keySeq(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}
