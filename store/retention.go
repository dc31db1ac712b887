package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/approvebot/approvebot"
	bolt "go.etcd.io/bbolt"
)

// Retention removes decided requests older than a cutoff together with the
// beginning of the audit log that holds their records, without breaking
// the log: before anything is removed, the last removed record's place
// (sequence and digest) is signed as a checkpoint, the seal, and the seal
// is kept in the file (meta/audit_seal) in the transaction that removes.
// The log then begins after the seal: its first record must link to the
// sealed digest, and the seal's signature must check, so whoever removes or
// rewrites records at its start without the signing key is found.
//
// Only a prefix of the log is removed: every record from the first one of a
// request that stays (a pending one, or one with a record newer than the
// cutoff) stays, so a request that stays keeps all of its records. A
// decided request goes with the prefix that holds its first record; any
// later record of it stays in the log until a later pass removes it too.

// SealFunc signs h, the last record about to be removed, and returns the
// seal as one JSON line holding at least audit_seq, audit_head and the
// signed checkpoint. It may also write the line to an external sink; the
// store keeps it only if the removal then commits.
type SealFunc func(h Head) ([]byte, error)

// PruneReport says what one retention pass removed.
type PruneReport struct {
	Requests int  `json:"requests"` // requests removed
	Records  int  `json:"records"`  // audit records removed
	Seal     Head `json:"seal"`     // the last removed record (zero when nothing was removed)
}

// ErrPruneRaced is returned when the log changed between planning a pass
// and removing: nothing was removed, and the next pass will try again.
var ErrPruneRaced = errors.New("retention: requests to remove changed while the pass was planned; nothing removed")

// sealOf reads the seal's place from meta (nil when there is none).
func sealOf(tx *bolt.Tx) (*Head, error) {
	v := tx.Bucket(bucketMeta).Get(keyAuditSeal)
	if v == nil {
		return nil, nil
	}
	return parseSeal(v)
}

func parseSeal(v []byte) (*Head, error) {
	var l struct {
		AuditSeq   uint64 `json:"audit_seq"`
		AuditHead  string `json:"audit_head"`
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.Unmarshal(v, &l); err != nil || l.AuditSeq == 0 || l.AuditHead == "" || l.Checkpoint == "" {
		return nil, errors.New("the retention seal is not a signed checkpoint of an audit record")
	}
	return &Head{Seq: l.AuditSeq, Digest: l.AuditHead}, nil
}

// pruneRecord is what planning reads of an audit record.
type pruneRecord struct {
	RequestID string `json:"request_id"`
	At        string `json:"at"`
}

type prunePlan struct {
	cut      uint64 // remove records up to and including this one
	digest   string // its digest
	requests map[string]bool
	scanned  uint64 // the last record read while planning
	sealWas  []byte // the seal when planned
}

// PruneBatch bounds the audit records one Prune removes, so that one
// transaction never holds the writer for long; Prune again until it
// removes nothing.
const PruneBatch = 10000

// Prune removes the decided requests whose last audit record is older
// than before, and the records up to the last one that only they (or no
// stored request) hold, sealing them with seal first: at most PruneBatch
// records at a time. Pending requests are never removed.
func (s *Bolt) Prune(before time.Time, seal SealFunc) (PruneReport, error) {
	var plan *prunePlan
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		plan, err = planPrune(tx, before)
		return err
	})
	if err != nil || plan == nil {
		return PruneReport{}, err
	}
	line, err := seal(Head{Seq: plan.cut, Digest: plan.digest})
	if err != nil {
		return PruneReport{}, fmt.Errorf("retention: seal the records to remove: %w", err)
	}
	if h, err := parseSeal(line); err != nil || *h != (Head{Seq: plan.cut, Digest: plan.digest}) {
		return PruneReport{}, errors.New("retention: the seal does not name the last record to remove")
	}
	rep := PruneReport{Seal: Head{Seq: plan.cut, Digest: plan.digest}}
	err = s.write(func(tx *bolt.Tx) error {
		rep.Requests, rep.Records = 0, 0
		return applyPrune(tx, plan, line, &rep)
	})
	if err != nil {
		return PruneReport{}, err
	}
	return rep, nil
}

func planPrune(tx *bolt.Tx, before time.Time) (*prunePlan, error) {
	meta := tx.Bucket(bucketMeta)
	sealed, err := sealOf(tx)
	if err != nil {
		return nil, err
	}
	type span struct {
		first, last uint64
		lastAt      time.Time
	}
	spans := map[string]*span{}
	var stopAt uint64 // the first record at or after before (0: none)
	var scanned uint64
	c := tx.Bucket(bucketAudit).Cursor()
	k, _ := c.First()
	first := keySeq(k)
	for k, v := c.First(); k != nil; k, v = c.Next() {
		seq := keySeq(k)
		scanned = seq
		var rec pruneRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return nil, fmt.Errorf("audit record %d: corrupt: %w", seq, err)
		}
		at, err := time.Parse(time.RFC3339Nano, rec.At)
		if err != nil {
			return nil, fmt.Errorf("audit record %d: at %q is not a time", seq, rec.At)
		}
		if stopAt == 0 && !at.Before(before) {
			if scanned == first {
				return nil, nil // the log's first record is too young: nothing to remove
			}
			stopAt = seq
		}
		if rec.RequestID == "" {
			continue
		}
		sp := spans[rec.RequestID]
		if sp == nil {
			sp = &span{first: seq}
			spans[rec.RequestID] = sp
		}
		sp.last, sp.lastAt = seq, at
	}
	if scanned == 0 {
		return nil, nil
	}
	cut := scanned
	if stopAt != 0 {
		cut = stopAt - 1
	}
	if cut-first+1 > PruneBatch {
		cut = first + PruneBatch - 1
	}
	// Which requests may go: decided, with every record before the cutoff.
	// Every other request stays whole, and so does the log from its first
	// record on.
	candidates := map[string]bool{}
	for id, sp := range spans {
		v := stateRecord(tx, []byte(id))
		if v == nil {
			continue // records of no stored request go with the prefix
		}
		var st struct {
			Status approvebot.Status `json:"status"`
		}
		if err := json.Unmarshal(v, &st); err != nil {
			return nil, fmt.Errorf("request %s: corrupt record: %w", id, err)
		}
		if st.Status.Final() && sp.lastAt.Before(before) {
			candidates[id] = true
		} else if sp.first <= cut {
			cut = sp.first - 1
		}
	}
	// A decided request goes once its first record is in the sealed part.
	// Records of it past the cut (a late chat update, or the batch ending
	// in its middle) stay in the log, of no stored request, until a later
	// pass: holding the cut back for them instead could chain from one
	// overlapping request to the next and never remove anything.
	remove := map[string]bool{}
	for id := range candidates {
		if spans[id].first <= cut {
			remove[id] = true
		}
	}
	if sealed != nil && cut <= sealed.Seq || cut == 0 {
		return nil, nil
	}
	v := tx.Bucket(bucketAudit).Get(binary.BigEndian.AppendUint64(nil, cut))
	var rec struct {
		Digest string `json:"digest"`
	}
	if v == nil || json.Unmarshal(v, &rec) != nil || rec.Digest == "" {
		return nil, fmt.Errorf("audit record %d: missing or corrupt", cut)
	}
	return &prunePlan{cut: cut, digest: rec.Digest, requests: remove, scanned: scanned, sealWas: bytes.Clone(meta.Get(keyAuditSeal))}, nil
}

func applyPrune(tx *bolt.Tx, plan *prunePlan, seal []byte, rep *PruneReport) error {
	meta := tx.Bucket(bucketMeta)
	if !bytes.Equal(meta.Get(keyAuditSeal), plan.sealWas) {
		return ErrPruneRaced
	}
	audit := tx.Bucket(bucketAudit)
	// Records written since the plan must not name a request that goes.
	c := audit.Cursor()
	for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, plan.scanned+1)); k != nil; k, v = c.Next() {
		var rec pruneRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("audit record %d: corrupt: %w", keySeq(k), err)
		}
		if plan.requests[rec.RequestID] {
			return ErrPruneRaced
		}
	}
	var keys [][]byte
	for k, _ := c.First(); k != nil && keySeq(k) <= plan.cut; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := audit.Delete(k); err != nil {
			return err
		}
	}
	rep.Records = len(keys)
	for id := range plan.requests {
		r, err := getRequest(tx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !r.Status.Final() {
			return ErrPruneRaced
		}
		if err := removeRequest(tx, r); err != nil {
			return fmt.Errorf("request %s: %w", id, err)
		}
		rep.Requests++
	}
	return meta.Put(keyAuditSeal, seal)
}

// removeRequest deletes a decided request and what points at it: its
// idempotency key, its agent id in the index, and outbox jobs still owed.
func removeRequest(tx *bolt.Tx, r *approvebot.Request) error {
	if r.IdempotencyKey != "" {
		idem := tx.Bucket(bucketIdempotency)
		if k := idemKey(r.Caller, r.IdempotencyKey); string(idem.Get(k)) == r.ID {
			if err := idem.Delete(k); err != nil {
				return err
			}
		}
	}
	if r.Schema == approvebot.SchemaV1 {
		idx := tx.Bucket(bucketAgentIDs)
		if k := agentKey(r.Caller, r.Fields.ApprovalRequestID); string(idx.Get(k)) == r.ID {
			if err := idx.Delete(k); err != nil {
				return err
			}
		}
	}
	outbox := tx.Bucket(bucketOutbox)
	prefix := append([]byte(r.ID), 0)
	var jobs [][]byte
	c := outbox.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		jobs = append(jobs, bytes.Clone(k))
	}
	for _, k := range jobs {
		if err := outbox.Delete(k); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketStates).Delete([]byte(r.ID)); err != nil {
		return err
	}
	return tx.Bucket(bucketRequests).Delete([]byte(r.ID))
}
