package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
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

// RecordDigest recomputes a record's digest.
func RecordDigest(rec Record) (string, error) {
	rec.Digest = ""
	b, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	return canon.Digest(b)
}

func appendEvents(tx *bolt.Tx, events []approvebot.Event) error {
	if len(events) == 0 {
		return nil
	}
	audit := tx.Bucket(bucketAudit)
	meta := tx.Bucket(bucketMeta)
	prev := string(meta.Get(keyAuditHead))
	for _, ev := range events {
		seq, err := audit.NextSequence()
		if err != nil {
			return err
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
		if rec.Digest, err = RecordDigest(rec); err != nil {
			return fmt.Errorf("audit %s: %w", ev.Type, err)
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if err := audit.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
			return err
		}
		prev = rec.Digest
	}
	return meta.Put(keyAuditHead, []byte(prev))
}

// Audit calls fn with each audit record in order, starting after seq from.
func (s *Store) Audit(from uint64, fn func(rec Record, raw []byte) error) error {
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

// AuditHead is the digest of the last audit record.
func (s *Store) AuditHead() (string, error) {
	var head string
	err := s.db.View(func(tx *bolt.Tx) error {
		head = string(tx.Bucket(bucketMeta).Get(keyAuditHead))
		return nil
	})
	return head, err
}
