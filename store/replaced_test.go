package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// An open that waits for the lock while compact renames a new file over the
// old one gets the new file, not the unlinked old one.
func TestOpenAfterTheFileWasReplacedUnderItsLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "approvebot.db")
	holder, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}

	opened := make(chan *Bolt, 1)
	go func() {
		s, err := Open(path, Options{LockTimeout: time.Minute})
		if err != nil {
			t.Error(err)
		}
		opened <- s
	}()
	// Wait until that open has the old file open and is waiting for its
	// lock (bbolt retries the lock; the file stays open meanwhile).
	deadline := time.Now().Add(time.Minute)
	for openedTimes(t, path) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the second open never waited for the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// What compact does: a new file, renamed over the old while the lock is held.
	next := path + ".new"
	s, err := Open(next, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := newRequest("ar_in_the_new_file", time.Now().Add(time.Hour))
	if _, _, err := s.Create(r, requested(r.ID)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}

	got := <-opened
	if got == nil {
		t.FailNow()
	}
	defer got.Close()
	if _, err := got.Get("ar_in_the_new_file"); err != nil {
		t.Fatalf("the open got the old, unlinked file: %v", err)
	}
}

// openedTimes counts this process's descriptors open on path.
func openedTimes(t *testing.T, path string) int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd: cannot see which files are open")
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}
