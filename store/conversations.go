package store

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// The Teams adapter keeps conversation references here. The store holds them
// as opaque bytes: it knows nothing of Teams.

// PutConversation stores data under key, replacing what was there.
func (s *Bolt) PutConversation(key string, data []byte) error {
	return s.write(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketConversations).Put([]byte(key), data)
	})
}

// GetConversation returns the data under key, or nil when there is none.
func (s *Bolt) GetConversation(key string) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bucketConversations).Get([]byte(key)))
		return nil
	})
	return out, err
}

// ListConversations returns every stored reference by key.
func (s *Bolt) ListConversations() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketConversations).ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	return out, err
}

// DeleteConversation removes key.
func (s *Bolt) DeleteConversation(key string) error {
	return s.write(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketConversations).Delete([]byte(key))
	})
}
