package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/approvebot/approvebot"
	bolt "go.etcd.io/bbolt"
)

// saveNudge keeps the reminder index in step with r: a pending request with
// a reminder due is indexed by when, so the engine arms its timers at start
// from this index alone, soonest first, without reading every request.
func saveNudge(tx *bolt.Tx, old *prior, r *approvebot.Request) error {
	b := tx.Bucket(bucketNudges)
	if b == nil {
		return nil // a store opened read-only before the index existed
	}
	if old != nil && !old.final && !old.nudge.IsZero() {
		if err := b.Delete(pendingKey(old.nudge, r.ID)); err != nil {
			return err
		}
	}
	if !r.Status.Final() && !r.Nudge.IsZero() {
		return b.Put(pendingKey(r.Nudge, r.ID), nil)
	}
	return nil
}

// Nudges calls fn with the id of every pending request that has a reminder
// due, and when, soonest first.
func (s *Bolt) Nudges(fn func(id string, at time.Time) error) error {
	return s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNudges)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			if len(k) < 9 {
				return fmt.Errorf("malformed reminder key %q", k)
			}
			return fn(string(k[8:]), time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))))
		})
	})
}
