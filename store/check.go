package store

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

// Check runs bbolt's own consistency check over the whole file (every page
// reachable exactly once, free list consistent) and reports the first
// problems found. It reads the file in one read transaction, so it may run
// while the store serves.
func (s *Bolt) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
			if len(errs) == 10 {
				break
			}
		}
		return errors.Join(errs...)
	})
}
