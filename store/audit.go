package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/canon"
	bolt "go.etcd.io/bbolt"
)

// Record is one audit log line as stored: the event, its place in the log,
// and the digests that chain it to the line before. Digest covers the
// canonical JSON of every other field.
type Record struct {
	Seq       uint64          `json:"seq"`
	Type      string          `json:"type"`
	RequestID string          `json:"request_id"`
	At        string          `json:"at"`
	Actor     string          `json:"actor,omitempty"`
	Detail    json.RawMessage `json:"detail,omitempty"`
	Prev      string          `json:"prev"`
	Digest    string          `json:"digest"`
}

// RecordDigest recomputes a record's digest: the SHA-256 of the canonical
// (RFC 8785) JSON of the record as encoding/json writes it, with Digest "".
func RecordDigest(rec Record) (string, error) {
	detail, err := canonicalDetail(rec.Detail)
	if err != nil {
		return "", err
	}
	return recordDigest(rec, detail)
}

// canonicalDetail is the RFC 8785 form of an event's detail (nil when it has
// none). Only the detail needs a JSON canonicalizer; the rest of the record
// is a fixed set of strings and one integer.
func canonicalDetail(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	c, err := canon.Canonicalize(raw)
	if err != nil {
		return nil, fmt.Errorf("detail: %w", err)
	}
	return c, nil
}

// recordDigest writes the canonical form of rec directly instead of
// marshalling the record and canonicalizing it whole: the audit chain is
// extended one record at a time inside the store's single writer, so this
// is on the path every commit waits for. Keys come in RFC 8785 order, and
// actor and detail are left out when empty, as encoding/json's omitempty
// leaves them out. digestByMarshal is the definition; tests hold the two
// equal.
func recordDigest(rec Record, detail []byte) (string, error) {
	if rec.Seq > 1<<53 {
		// Past 2^53 RFC 8785 writes numbers through float64; let the
		// canonicalizer do it.
		return digestByMarshal(rec)
	}
	b := make([]byte, 0, 192+len(rec.Actor)+len(rec.At)+len(detail)+len(rec.Prev)+len(rec.RequestID)+len(rec.Type))
	b = append(b, '{')
	if rec.Actor != "" {
		b = append(b, `"actor":`...)
		b = canon.AppendString(b, rec.Actor)
		b = append(b, ',')
	}
	b = append(b, `"at":`...)
	b = canon.AppendString(b, rec.At)
	if detail != nil {
		b = append(b, `,"detail":`...)
		b = append(b, detail...)
	}
	b = append(b, `,"digest":"","prev":`...)
	b = canon.AppendString(b, rec.Prev)
	b = append(b, `,"request_id":`...)
	b = canon.AppendString(b, rec.RequestID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, rec.Seq, 10)
	b = append(b, `,"type":`...)
	b = canon.AppendString(b, rec.Type)
	b = append(b, '}')
	return canon.Sum(b), nil
}

// digestByMarshal is what a record's digest means: marshal it with Digest
// empty and canonicalize the whole text.
func digestByMarshal(rec Record) (string, error) {
	rec.Digest = ""
	b, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	return canon.Digest(b)
}

// preparedEvent is an event whose detail is already canonical, so that the
// writer only has to chain it.
type preparedEvent struct {
	approvebot.Event
	canonical []byte // canonical detail; nil when there is none
}

// prepareEvents canonicalizes the events' details. Create calls it before
// handing its transition to the writer, so that work runs in the caller's
// goroutine, in parallel with other callers.
func prepareEvents(events []approvebot.Event) ([]preparedEvent, error) {
	out := make([]preparedEvent, len(events))
	for i, ev := range events {
		c, err := canonicalDetail(ev.Detail)
		if err != nil {
			return nil, fmt.Errorf("audit %s: %w", ev.Type, err)
		}
		out[i] = preparedEvent{Event: ev, canonical: c}
	}
	return out, nil
}

func appendEvents(tx *bolt.Tx, events []approvebot.Event) error {
	prepared, err := prepareEvents(events)
	if err != nil {
		return err
	}
	_, err = appendPrepared(tx, prepared)
	return err
}

// appendPrepared chains events onto the log and returns where the last
// approval_resolved among them landed (nil when there is none).
func appendPrepared(tx *bolt.Tx, events []preparedEvent) (resolved *Head, err error) {
	if len(events) == 0 {
		return nil, nil
	}
	audit := tx.Bucket(bucketAudit)
	meta := tx.Bucket(bucketMeta)
	prev := string(meta.Get(keyAuditHead))
	for _, ev := range events {
		seq, err := audit.NextSequence()
		if err != nil {
			return nil, err
		}
		rec := Record{
			Seq:       seq,
			Type:      ev.Type,
			RequestID: ev.RequestID,
			At:        ev.At.UTC().Format(time.RFC3339Nano),
			Actor:     ev.Actor,
			Detail:    ev.Detail,
			Prev:      prev,
		}
		if rec.Digest, err = recordDigest(rec, ev.canonical); err != nil {
			return nil, fmt.Errorf("audit %s: %w", ev.Type, err)
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		if err := audit.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
			return nil, err
		}
		if ev.Type == approvebot.EventResolved {
			resolved = &Head{Seq: seq, Digest: rec.Digest}
		}
		prev = rec.Digest
	}
	return resolved, meta.Put(keyAuditHead, []byte(prev))
}

// Head is a place in the audit log: a record's sequence number and digest.
// The log's head is its last record; a checkpoint or a receipt names one.
type Head struct {
	Seq    uint64 `json:"seq"`
	Digest string `json:"digest"`
}

// Head returns the log's last record's place (zero when the log is empty).
func (s *Bolt) Head() (Head, error) {
	var h Head
	err := s.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketAudit).Cursor().Last()
		h = Head{Seq: keySeq(k), Digest: string(tx.Bucket(bucketMeta).Get(keyAuditHead))}
		return nil
	})
	return h, err
}

// Audit calls fn with each audit record in order, starting after seq from.
func (s *Bolt) Audit(from uint64, fn func(rec Record, raw []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, from+1)); k != nil; k, v = c.Next() {
			var rec Record
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("audit record %d: corrupt: %w", binary.BigEndian.Uint64(k), err)
			}
			if err := fn(rec, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Record returns the place of the audit record at seq, and false when the
// log has no such record.
func (s *Bolt) Record(seq uint64) (Head, bool, error) {
	var h Head
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAudit).Get(binary.BigEndian.AppendUint64(nil, seq))
		if v == nil {
			// Retention removed the record the seal vouches for; the seal
			// holds its place.
			if seal, err := sealOf(tx); err == nil && seal != nil && seal.Seq == seq {
				h, found = *seal, true
			}
			return nil
		}
		var rec struct {
			Digest string `json:"digest"`
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("audit record %d: corrupt: %w", seq, err)
		}
		h, found = Head{Seq: seq, Digest: rec.Digest}, true
		return nil
	})
	return h, found, err
}
