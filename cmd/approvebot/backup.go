package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/store"
)

// cmdBackup writes a consistent copy of the store file to --out: from the
// file itself when no server holds it, else streamed by the running server
// from one read transaction (admin API). The copy is written beside --out,
// checked (it must open as a store and its audit trail must verify), synced
// and only then renamed into place, so --out is never a partial file.
func cmdBackup(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	out := fs.String("out", "", "where to write the copy (required)")
	cfg, rest, err := loadConfig(fs, args, getenv, stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError(fmt.Sprintf("backup takes no arguments, got %q", rest))
	}
	if *out == "" {
		return usageError("backup needs --out FILE")
	}
	if same(*out, cfg.Store.Path) {
		return usageError(fmt.Sprintf("--out %s is the store file itself", *out))
	}
	b, err := openBackend(cfg)
	if err != nil {
		return err
	}
	defer b.close()

	tmp, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".partial-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("backup: %w", err)
	}
	source := "the store file " + cfg.Store.Path
	if b.store != nil {
		_, err = b.store.Backup(tmp, nil)
	} else {
		source = "the running server at " + b.server
		err = b.get(ctx, "/admin/backup", nil, tmp)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup from %s: %w", source, err)
	}
	records, err := checkBackup(tmp.Name())
	if err != nil {
		return fmt.Errorf("backup from %s is unusable, nothing written to %s: %w", source, *out, err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if d, err := os.Open(filepath.Dir(*out)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	fi, _ := os.Stat(*out)
	fmt.Fprintf(stdout, "wrote %s (%d bytes, %d audit records, audit trail intact) from %s\n", *out, fi.Size(), records, source)
	return nil
}

// checkBackup opens the copy as a store and verifies its audit trail.
func checkBackup(path string) (int, error) {
	st, err := store.Open(path, store.Options{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	rep, err := bot.VerifyAudit(st)
	if err != nil {
		return 0, err
	}
	if rep.Break != nil {
		return 0, errors.New("its audit trail does not verify: " + rep.Break.Error())
	}
	return rep.Records, nil
}

// same reports whether a and b name one file.
func same(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(fa, fb)
	}
	absA, _ := filepath.Abs(a)
	absB, _ := filepath.Abs(b)
	return absA == absB
}
