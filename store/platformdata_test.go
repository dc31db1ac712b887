package store

import (
	"maps"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Each platform sees its own keys only, they outlive a restart, and data
// asked for as "conversations" stays in the bucket earlier files keep
// Teams' conversation references in.
func TestPlatformData(t *testing.T) {
	s, path := openTemp(t, Options{})
	legacy, pager := s.PlatformData("conversations"), s.PlatformData("pager")
	if got, err := pager.List(); err != nil || len(got) != 0 {
		t.Fatalf("a platform that never wrote lists %v, %v", got, err)
	}
	if got, err := pager.Get("k"); err != nil || got != nil {
		t.Fatalf("a platform that never wrote has %q, %v", got, err)
	}
	if err := pager.Delete("k"); err != nil {
		t.Fatalf("delete from a platform that never wrote: %v", err)
	}
	for _, put := range []struct {
		d    KV
		k, v string
	}{{legacy, "19:a@thread.tacv2", "ref-a"}, {legacy, "19:b@thread.tacv2", "ref-b"}, {pager, "19:a@thread.tacv2", "page"}} {
		if err := put.d.Put(put.k, []byte(put.v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := legacy.Delete("19:b@thread.tacv2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	list := func(platform string) map[string]string {
		t.Helper()
		all, err := s.PlatformData(platform).List()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for k, v := range all {
			out[k] = string(v)
		}
		return out
	}
	if got, want := list("conversations"), map[string]string{"19:a@thread.tacv2": "ref-a"}; !maps.Equal(got, want) {
		t.Errorf("conversations has %v, want %v", got, want)
	}
	if got, want := list("pager"), map[string]string{"19:a@thread.tacv2": "page"}; !maps.Equal(got, want) {
		t.Errorf("pager has %v, want %v", got, want)
	}
	if got, err := s.PlatformData("pager").Get("19:a@thread.tacv2"); err != nil || string(got) != "page" {
		t.Errorf("pager's key: %q, %v", got, err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketConversations).Stats().KeyN; n != 1 {
			t.Errorf("the conversations bucket holds %d keys, want the one left", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
