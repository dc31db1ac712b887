package store

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// A platform keeps what it must remember across restarts (Teams: where the
// bot is installed) as opaque values under keys of its own. The store knows
// nothing of what they mean; each platform has a bucket of its own, so no
// platform's keys can meet another's.

// legacyBuckets are data kept before there was a bucket per platform, by
// the name their platform still asks for them under (bot.DataNamer): files
// of earlier releases have them there.
var legacyBuckets = map[string][]byte{"conversations": bucketConversations}

// platformData is one platform's values in the file.
type platformData struct {
	s      *Bolt
	bucket []byte
}

// PlatformData returns the values kept under name, in the bucket
// "platform:<name>" (made on the first Put), or the bucket they have always
// had.
func (s *Bolt) PlatformData(name string) KV {
	b, ok := legacyBuckets[name]
	if !ok {
		b = []byte("platform:" + name)
	}
	return &platformData{s: s, bucket: b}
}

// Put stores data under key, replacing what was there.
func (d *platformData) Put(key string, data []byte) error {
	return d.s.write(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(d.bucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), data)
	})
}

// Get returns the data under key, or nil when there is none.
func (d *platformData) Get(key string) ([]byte, error) {
	var out []byte
	err := d.s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(d.bucket); b != nil {
			out = bytes.Clone(b.Get([]byte(key)))
		}
		return nil
	})
	return out, err
}

// List returns every value by key.
func (d *platformData) List() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := d.s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(d.bucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	return out, err
}

// Delete removes key.
func (d *platformData) Delete(key string) error {
	return d.s.write(func(tx *bolt.Tx) error {
		if b := tx.Bucket(d.bucket); b != nil {
			return b.Delete([]byte(key))
		}
		return nil
	})
}
