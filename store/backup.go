package store

import (
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole file to w, streamed from one
// read transaction: transitions go on committing meanwhile, and the copy is
// the file as of the moment the transaction began. size, when not nil,
// learns the copy's exact length before the first byte is written (an HTTP
// answer's Content-Length, so that a cut stream is noticed). The copy is a
// bbolt file that Open reads like the original.
func (s *Bolt) Backup(w io.Writer, size func(int64)) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup of %s: %w", s.path, err)
	}
	return n, nil
}
