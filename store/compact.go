package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bbolt never gives freed pages back to the file system: after retention
// removes records the file keeps its size, and only a copy of the live data
// into a new file shrinks it.

// CompactReport says what compaction did.
type CompactReport struct {
	BytesBefore, BytesAfter int64
}

// CompactAndClose copies the file's live data into a new file beside it,
// checks that the copy holds the same (bbolt's own check, the same counts,
// the same audit head and seal), and then puts it in the original's place
// with an atomic rename, and closes the store. The store must be open for
// writing (so this process holds the file's lock and no server can use
// it), and idle. On any error the original file is left as it was, and the
// store is closed all the same.
func (s *Bolt) CompactAndClose() (CompactReport, error) {
	var rep CompactReport
	if s.db.IsReadOnly() {
		s.Close()
		return rep, errors.New("compact: the store is open read-only")
	}
	tmp := s.path + ".compact"
	err := s.compactTo(tmp, &rep)
	if err != nil {
		os.Remove(tmp)
		s.Close()
		return rep, err
	}
	// Renaming while the original is still locked: a server starting now
	// waits for the lock, then finds the compacted file.
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		s.Close()
		return rep, fmt.Errorf("compact: put the compacted file in place: %w", err)
	}
	if err := SyncDir(filepath.Dir(s.path)); err != nil {
		s.Close()
		return rep, fmt.Errorf("compact: sync %s: %w", filepath.Dir(s.path), err)
	}
	if err := s.Close(); err != nil {
		return rep, err
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return rep, err
	}
	rep.BytesAfter = fi.Size()
	return rep, nil
}

func (s *Bolt) compactTo(tmp string, rep *CompactReport) error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return err
	}
	rep.BytesBefore = fi.Size()
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("compact: remove the leftover %s: %w", tmp, err)
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("compact: create %s: %w", tmp, err)
	}
	if err := bolt.Compact(dst, s.db, 64<<20); err != nil {
		dst.Close()
		return fmt.Errorf("compact into %s: %w", tmp, err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return fmt.Errorf("compact: sync %s: %w", tmp, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("compact: close %s: %w", tmp, err)
	}
	copyStore, err := Open(tmp, Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("compact: the copy %s does not open: %w", tmp, err)
	}
	defer copyStore.Close()
	if err := copyStore.Check(); err != nil {
		return fmt.Errorf("compact: the copy %s is not consistent: %w", tmp, err)
	}
	a, err := s.summary()
	if err != nil {
		return err
	}
	b, err := copyStore.summary()
	if err != nil {
		return err
	}
	if a != b {
		return fmt.Errorf("compact: the copy differs from the original (%+v, want %+v)", b, a)
	}
	return nil
}

// storeSummary is what must be the same in a file and its compacted copy.
type storeSummary struct {
	Stats         Stats
	Head          Head
	Seal          string
	Schema        string
	Idem, Agents  int
	States        int
	Conversations int
	AuditSequence uint64 // the next record's number follows it
}

func (s *Bolt) summary() (storeSummary, error) {
	var out storeSummary
	st, err := s.Stats()
	if err != nil {
		return out, err
	}
	st.FileBytes = 0
	out.Stats = st
	if out.Head, err = s.Head(); err != nil {
		return out, err
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		out.Seal = string(bytes.Clone(meta.Get(keyAuditSeal)))
		out.Schema = string(bytes.Clone(meta.Get(keySchema)))
		out.Idem = tx.Bucket(bucketIdempotency).Stats().KeyN
		out.Agents = tx.Bucket(bucketAgentIDs).Stats().KeyN
		if b := tx.Bucket(bucketStates); b != nil {
			out.States = b.Stats().KeyN
		}
		out.Conversations = tx.Bucket(bucketConversations).Stats().KeyN
		out.AuditSequence = tx.Bucket(bucketAudit).Sequence()
		return nil
	})
	return out, err
}

// SyncDir makes a file's creation or rename in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
