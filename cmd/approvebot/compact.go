package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/signing"
	"github.com/approvebot/approvebot/store"
	berrors "go.etcd.io/bbolt/errors"
)

// cmdCompact is offline upkeep of the store file: it applies
// store.retention, as the running service does every hour, and then shrinks
// the file to its live data (bbolt never returns freed pages to the file
// system). It takes the file's lock for writing, so it refuses while a
// server holds the file.
func cmdCompact(ctx context.Context, clock bot.Clock, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	cfg, rest, err := loadConfig(flag.NewFlagSet("compact", flag.ContinueOnError), args, getenv, stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError(fmt.Sprintf("compact takes no arguments, not %q", rest[0]))
	}
	st, err := store.Open(cfg.Store.Path, store.Options{LockTimeout: 300 * time.Millisecond})
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("store %s is in use (a running approvebot holds it): stop the service, then run compact again", cfg.Store.Path)
	}
	if err != nil {
		return err
	}
	if cfg.Store.Retention > 0 {
		key, err := signing.LoadKey(cfg.Signing.KeyFile)
		if err != nil {
			st.Close()
			return fmt.Errorf("store.retention seals what it removes with the signing key: %w", err)
		}
		r := &bot.Retention{Store: st, Signer: signing.NewSigner(key, cfg.Signing.Issuer), Keep: cfg.Store.Retention}
		if cfg.Audit.CheckpointFile != "" {
			r.Checkpoints = &bot.CheckpointConfig{File: cfg.Audit.CheckpointFile}
		}
		rep, err := r.Run(clock.Now())
		if err != nil {
			st.Close()
			return err
		}
		if rep.Records == 0 {
			fmt.Fprintf(stdout, "retention: nothing older than %s to remove\n", cfg.Store.Retention)
		} else {
			fmt.Fprintf(stdout, "retention: removed %d decided requests and audit records up to %d, sealed (%s)\n", rep.Requests, rep.Seal.Seq, rep.Seal.Digest)
		}
	}
	rep, err := st.CompactAndClose()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "compacted %s: %d bytes, was %d\n", cfg.Store.Path, rep.BytesAfter, rep.BytesBefore)
	return nil
}
