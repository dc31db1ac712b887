package store_test

import (
	"path/filepath"
	"testing"

	"github.com/approvebot/approvebot/store"
	"github.com/approvebot/approvebot/store/storetest"
)

func TestBoltContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.Open(filepath.Join(t.TempDir(), "approvebot.db"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
