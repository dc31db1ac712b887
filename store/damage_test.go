package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenRefusesDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	st, err := Open(good, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		data []byte
		mode os.FileMode
		want string
	}{
		"empty":          {nil, 0o600, "the file is empty (0 bytes)"},
		"half":           {data[:len(data)/2], 0o600, "cut short (truncated)"},
		"first page":     {data[:50], 0o600, "too short for bbolt's first meta page"},
		"not bbolt":      {[]byte(strings.Repeat("not a store ", 1000)), 0o600, "neither of bbolt's meta pages is valid"},
		"world writable": {data, 0o602, "group or others can write it"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".db")
		if err := os.WriteFile(path, tc.data, tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{false, true} {
			_, err := Open(path, Options{ReadOnly: ro})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("%s (read-only %v): %v, want it to say %q", name, ro, err, tc.want)
			}
			if tc.mode == 0o600 && !errors.Is(err, ErrNotStore) {
				t.Errorf("%s: %v is not ErrNotStore", name, err)
			}
		}
	}
}

// FuzzInspectFile feeds arbitrary bytes as a store file: Open's checks
// before bbolt maps the file must refuse or pass them, never panic.
func FuzzInspectFile(f *testing.F) {
	dir := f.TempDir()
	good := filepath.Join(dir, "good.db")
	st, err := Open(good, Options{})
	if err != nil {
		f.Fatal(err)
	}
	st.Close()
	data, _ := os.ReadFile(good)
	f.Add(data[:8192])
	f.Add(data[:4096+80])
	f.Add([]byte{})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "f.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = inspectFile(path)
	})
}
