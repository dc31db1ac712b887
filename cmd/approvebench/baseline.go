package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approvebot/approvebot/store"
	bolt "go.etcd.io/bbolt"
)

// baselineResult is the disk's limit, measured on the store's directory.
type baselineResult struct {
	ValueBytes  int
	Serial      float64 // one bbolt write transaction per request, one writer: tx/s
	CommitP50   time.Duration
	CommitP99   time.Duration
	Group       float64 // bbolt Batch, 256 writers sharing commits: writes/s
	StoreCreate float64 // store.Create (our group commit, JSON, audit chain), 256 writers: requests/s
	// StoreCPU is the CPU time one store.Create costs this process
	// (the writers, the store's writer and the collector).
	StoreCPU time.Duration
}

// groupWriters is how many writers share commits in the group baselines:
// the same as the highest intake concurrency.
const groupWriters = 256

// baselines measures what the machine allows: a bare loop of one bbolt
// write transaction (with fsync) per request, bbolt with group commit, and
// our store's Create driven directly.
func (b *bench) baselines() error {
	dir := filepath.Join(b.work, "baseline")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bl, err := newBuilder(dir)
	if err != nil {
		return err
	}
	sample, _, err := bl.request(0, true)
	if err != nil {
		return err
	}
	value, err := json.Marshal(sample)
	if err != nil {
		return err
	}
	n := b.rep.Sizes.Baseline
	res := baselineResult{ValueBytes: len(value)}

	b.logf("baseline: %d serial bbolt transactions of %d bytes", n, len(value))
	db, err := bolt.Open(filepath.Join(dir, "serial.db"), 0o600, nil)
	if err != nil {
		return err
	}
	lat := make([]time.Duration, 0, n)
	start := time.Now()
	for range n {
		t0 := time.Now()
		if err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("requests"))
			if err != nil {
				return err
			}
			return bk.Put(randomKey(), value)
		}); err != nil {
			db.Close()
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	res.Serial = float64(n) / time.Since(start).Seconds()
	res.CommitP50, res.CommitP99 = percentile(lat, 50), percentile(lat, 99)
	db.Close()

	total := n * 10
	b.logf("baseline: %d bbolt Batch writes from %d writers", total, groupWriters)
	db, err = bolt.Open(filepath.Join(dir, "batch.db"), 0o600, nil)
	if err != nil {
		return err
	}
	// Like our store: up to 512 writes share a commit; the delay only
	// gathers writers that are already waiting.
	db.MaxBatchSize, db.MaxBatchDelay = 512, time.Millisecond
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("requests")); return err }); err != nil {
		db.Close()
		return err
	}
	elapsed, err := parallel(total, groupWriters, func(int) error {
		return db.Batch(func(tx *bolt.Tx) error { return tx.Bucket([]byte("requests")).Put(randomKey(), value) })
	})
	db.Close()
	if err != nil {
		return err
	}
	res.Group = float64(total) / elapsed.Seconds()

	b.logf("baseline: %d store.Create from %d writers", total, groupWriters)
	st, err := openStoreAlone(dir)
	if err != nil {
		return err
	}
	cpu0 := selfCPU()
	elapsed, err = parallel(total, groupWriters, func(i int) error { return createAlone(st, bl, i) })
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	res.StoreCreate = float64(total) / elapsed.Seconds()
	res.StoreCPU = (selfCPU() - cpu0) / time.Duration(total)
	b.rep.Baseline = res
	return nil
}

// openStoreAlone opens approvebot's store in dir as the store-alone
// baseline drives it: its own file, default options.
func openStoreAlone(dir string) (*store.Bolt, error) {
	return store.Open(filepath.Join(dir, "store.db"), store.Options{})
}

// createAlone is the store alone's work for one request: build request i
// (a fresh id each time) as the engine stores a new one, and create it with
// its first event.
func createAlone(st *store.Bolt, bl *builder, i int) error {
	r, evs, err := bl.request(i, true)
	if err != nil {
		return err
	}
	_, _, err = st.Create(r, evs[:1]...)
	return err
}

// parallel runs fn(0..n-1) from w goroutines and returns how long it took.
func parallel(n, w int, fn func(i int) error) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	start := time.Now()
	for range w {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = fmt.Errorf("write %d: %w", i, err) })
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), first
}

func randomKey() []byte {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return []byte("ar_" + hex.EncodeToString(b[:]))
}
