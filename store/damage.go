package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// A store file is trusted only after it has been looked at: an empty file
// would be silently initialised as a new store, a truncated one faults on
// the first read of a missing page, and one that others may write proves
// nothing. Open refuses all three, then runs bbolt's own consistency check
// before the file serves anything. Whatever still goes wrong at run time (a
// panic inside bbolt, a fault on the memory map) stops the store: every
// later call fails with ErrDamaged and Failed is closed, so the server can
// stop and say why instead of dropping connections.

// ErrNotStore is returned by Open for a file that exists but is not a usable
// approvebot store: empty, truncated, or failing bbolt's consistency check.
var ErrNotStore = errors.New("not an approvebot store")

// ErrDamaged is returned once bbolt panicked or faulted on the file: the
// store serves nothing more.
var ErrDamaged = errors.New("store damaged")

// inspectFile checks what can be checked before bbolt maps the file. It
// returns false when there is no file yet (Open creates one).
func inspectFile(path string) (exists bool, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, openError(path, err)
	}
	if !fi.Mode().IsRegular() {
		if fi.IsDir() {
			return true, fmt.Errorf("open %s: it is a directory; store.path must name a file", path)
		}
		return true, fmt.Errorf("open %s: not a regular file; store.path must name a file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return true, fmt.Errorf("open %s: the file has mode %04o: group or others can write it, so its records prove nothing; run chmod 600 %s", path, perm, path)
	}
	if fi.Size() == 0 {
		return true, fmt.Errorf("open %s: it is %w: the file is empty (0 bytes); approvebot creates its store itself when store.path does not exist: restore the file from a backup, or remove it to start a new, empty store", path, ErrNotStore)
	}
	if err := checkLength(path, fi.Size()); err != nil {
		return true, fmt.Errorf("open %s: it is %w: %v; restore the file from a backup", path, ErrNotStore, err)
	}
	return true, nil
}

// bbolt's meta page, as it lays it out after a 16-byte page header: magic,
// version, page size, flags, root bucket (page, sequence), freelist page,
// high-water mark (first page past the end), transaction id, checksum
// (FNV-1a 64 of everything before it), all in the machine's byte order.
const (
	pageHeaderSize = 16
	metaMagic      = 0xED0CDAED
	metaSize       = 64
	metaSumAt      = 56
)

type metaPage struct {
	pageSize uint32
	hwm      uint64
	txid     uint64
}

// checkLength reads bbolt's two meta pages and checks that the file holds
// every page the newer valid one counts: a file cut short would otherwise
// open, say ready, and fault on the first read of a page past its end.
func checkLength(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	first := make([]byte, pageHeaderSize+metaSize)
	if _, err := io.ReadFull(f, first); err != nil {
		return fmt.Errorf("the file is %d bytes, too short for bbolt's first meta page", size)
	}
	m0, ok0 := parseMeta(first[pageHeaderSize:])
	var metas []metaPage
	if ok0 {
		metas = append(metas, m0)
	}
	// The second meta page sits one page in; its size comes from the first,
	// or, when that one is damaged, from the usual sizes.
	sizes := []int64{4096, 8192, 16384, 65536}
	if ok0 {
		sizes = []int64{int64(m0.pageSize)}
	}
	for _, ps := range sizes {
		second := make([]byte, pageHeaderSize+metaSize)
		if _, err := f.ReadAt(second, ps); err != nil {
			continue
		}
		if m1, ok := parseMeta(second[pageHeaderSize:]); ok && int64(m1.pageSize) == ps {
			metas = append(metas, m1)
			break
		}
	}
	if len(metas) == 0 {
		return errors.New("neither of bbolt's meta pages is valid (not a bbolt file, or a damaged one)")
	}
	use := metas[0]
	for _, m := range metas[1:] {
		if m.txid > use.txid {
			use = m
		}
	}
	if need := int64(use.hwm) * int64(use.pageSize); need > size {
		return fmt.Errorf("the file is %d bytes but its pages reach %d bytes: it was cut short (truncated)", size, need)
	}
	return nil
}

func parseMeta(b []byte) (metaPage, bool) {
	e := binary.NativeEndian
	if e.Uint32(b[0:4]) != metaMagic {
		return metaPage{}, false
	}
	h := fnv.New64a()
	_, _ = h.Write(b[:metaSumAt])
	if h.Sum64() != e.Uint64(b[metaSumAt:metaSumAt+8]) {
		return metaPage{}, false
	}
	m := metaPage{pageSize: e.Uint32(b[8:12]), hwm: e.Uint64(b[40:48]), txid: e.Uint64(b[48:56])}
	if m.pageSize < 512 || m.pageSize&(m.pageSize-1) != 0 {
		return metaPage{}, false
	}
	return m, true
}

// checkConsistency runs bbolt's consistency check over the whole file: every
// page reachable once, no page both used and free, keys in order.
func checkConsistency(db *bolt.DB) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bbolt's consistency check failed: %v", p)
		}
	}()
	prev := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(prev)
	return db.View(func(tx *bolt.Tx) error {
		var first error
		n := 0
		for e := range tx.Check() {
			if first == nil {
				first = e
			}
			n++
		}
		if first != nil {
			return fmt.Errorf("bbolt's consistency check found %d problems, the first: %v", n, first)
		}
		return nil
	})
}

// Failed is closed when the store stopped serving because bbolt panicked or
// faulted; Err then says why.
func (s *Bolt) Failed() <-chan struct{} { return s.failed }

// Err is why the store failed, or nil.
func (s *Bolt) Err() error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.failErr
}

// fail stops the store for good.
func (s *Bolt) fail(why any, stack []byte) error {
	err := fmt.Errorf("%w: bbolt failed on %s: %v", ErrDamaged, s.path, why)
	s.failMu.Lock()
	if s.failErr == nil {
		s.failErr = err
		s.failStack = stack
		close(s.failed)
	} else {
		err = s.failErr
	}
	s.failMu.Unlock()
	return err
}

// Stack is the stack of the panic that failed the store, for the log.
func (s *Bolt) Stack() []byte {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.failStack
}

// view is db.View that turns a panic or memory fault inside bbolt into
// ErrDamaged, and stops the store, instead of killing the caller's
// goroutine (and with it the connection of whoever is waiting).
func (s *Bolt) view(fn func(tx *bolt.Tx) error) (err error) {
	if err := s.Err(); err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			err = s.fail(p, debug.Stack())
		}
	}()
	prev := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(prev)
	return s.db.View(fn)
}

// openBolt is bolt.Open with a fault on the memory map (a damaged file
// whose meta pages still add up) reported as an error.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("%w: bbolt failed reading it: %v", ErrNotStore, p)
		}
	}()
	prev := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(prev)
	return bolt.Open(path, 0o600, o)
}
