package bot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/approvebot/approvebot/signing"
	"github.com/approvebot/approvebot/store"
)

// Retention removes decided requests older than store.retention, with the
// beginning of the audit log that holds their records. The removed part is
// sealed first: the last removed record's place is signed as a checkpoint
// (the decision key, as every checkpoint), appended to the checkpoint sinks
// when they are configured, and kept in the file in the transaction that
// removes. If the seal cannot be signed or written, nothing is removed.

// RetentionInterval is how often the server runs retention.
const RetentionInterval = time.Hour

// SealLine is a retention seal: a checkpoint line of the last removed
// record, saying what cutoff removed it. It reads as a checkpoint line
// (ReadCheckpoints accepts it), so a checkpoint file holding seals checks
// as any other.
type SealLine struct {
	CheckpointLine
	Retention     bool   `json:"retention"`      // true: a seal, not a periodic checkpoint
	RemovedBefore string `json:"removed_before"` // the cutoff, RFC 3339
}

// Pruner is a store that can remove decided requests and the audit records
// before them under a signed seal (bbolt's store.Bolt.Prune).
type Pruner interface {
	Prune(before time.Time, seal store.SealFunc) (store.PruneReport, error)
}

// Retention is one store's retention.
type Retention struct {
	Store  Pruner
	Signer *signing.Signer
	// Keep is how long decided requests are kept after their last record.
	Keep time.Duration
	// Checkpoints, when set, also get each seal (file and log sinks).
	Checkpoints *CheckpointConfig
	Logger      *slog.Logger
}

// Run removes what is older than Keep at now.
func (r *Retention) Run(now time.Time) (store.PruneReport, error) {
	if r.Keep <= 0 {
		return store.PruneReport{}, nil
	}
	if r.Signer == nil {
		return store.PruneReport{}, errors.New("retention needs the signing key to seal what it removes")
	}
	before := now.Add(-r.Keep)
	var total store.PruneReport
	for {
		rep, err := r.prune(now, before)
		total.Requests += rep.Requests
		total.Records += rep.Records
		if rep.Records > 0 {
			total.Seal = rep.Seal
		}
		if err != nil || rep.Records < store.PruneBatch/2 {
			return total, err
		}
	}
}

// prune runs one batch (store.Prune) and logs what it removed.
func (r *Retention) prune(now, before time.Time) (store.PruneReport, error) {
	rep, err := r.Store.Prune(before, func(h store.Head) ([]byte, error) {
		tok, err := r.Signer.SignCheckpoint(signing.Checkpoint{AuditSeq: h.Seq, AuditHead: h.Digest, At: now})
		if err != nil {
			return nil, err
		}
		line, err := json.Marshal(SealLine{
			CheckpointLine: CheckpointLine{AuditSeq: h.Seq, AuditHead: h.Digest, At: now.UTC().Format(time.RFC3339Nano), Checkpoint: tok},
			Retention:      true, RemovedBefore: before.UTC().Format(time.RFC3339Nano),
		})
		if err != nil {
			return nil, err
		}
		if c := r.Checkpoints; c != nil {
			if c.File != "" {
				if err := appendDurably(c.File, append(line, '\n')); err != nil {
					return nil, fmt.Errorf("audit checkpoint file %s: %w", c.File, err)
				}
			}
			if c.Log && r.Logger != nil {
				r.Logger.Info("audit checkpoint", "audit_seq", h.Seq, "audit_head", h.Digest, "why", "retention", "checkpoint", tok)
			}
		}
		return line, nil
	})
	if err != nil {
		return rep, err
	}
	if rep.Records > 0 && r.Logger != nil {
		r.Logger.Info("retention removed decided requests", "requests", rep.Requests, "audit_records", rep.Records,
			"sealed_seq", rep.Seal.Seq, "removed_before", before.UTC().Format(time.RFC3339))
	}
	return rep, nil
}

// VerifySeal checks a retention seal's signature and that its fields are
// what it signs, and returns the place it vouches for.
func VerifySeal(line []byte, keys *signing.KeySet, issuer string) (store.Head, error) {
	cps, err := ReadCheckpoints(bytes.NewReader(line), "the retention seal", keys, issuer)
	if err != nil {
		return store.Head{}, err
	}
	if len(cps) != 1 || cps[0].Seq == 0 {
		return store.Head{}, errors.New("the retention seal vouches for no record")
	}
	return cps[0].Head, nil
}

// retainer runs Retention every RetentionInterval of the engine's clock.
type retainer struct {
	e     *Engine
	r     *Retention
	mu    sync.Mutex // one pass at a time; held by stop until the pass ends
	timer Timer
	done  bool
}

// start arms the hourly pass and runs the first one in the background: a
// pass reads the whole audit log, which must not delay serving.
func (t *retainer) start() {
	t.mu.Lock()
	t.timer = t.e.clock.AfterFunc(RetentionInterval, t.pass)
	t.mu.Unlock()
	go t.once()
}

// pass runs retention once and arms the next.
func (t *retainer) pass() {
	if t.once() {
		t.mu.Lock()
		if !t.done {
			t.timer = t.e.clock.AfterFunc(RetentionInterval, t.pass)
		}
		t.mu.Unlock()
	}
}

// once runs retention once, unless stopped; it reports whether it ran.
func (t *retainer) once() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return false
	}
	if t.e.anchor != nil {
		// Seals and checkpoints go to the same file, one at a time.
		t.e.anchor.mu.Lock()
		defer t.e.anchor.mu.Unlock()
	}
	rep, err := t.r.Run(t.e.clock.Now())
	m := t.e.metrics
	m.retentionRemoved.WithLabelValues("requests").Add(float64(rep.Requests))
	m.retentionRemoved.WithLabelValues("audit_records").Add(float64(rep.Records))
	switch {
	case errors.Is(err, store.ErrPruneRaced):
		t.e.log.Info("retention pass cut short; the next one retries", "err", err)
		m.retentionPasses.WithLabelValues("nothing").Inc()
	case err != nil:
		t.e.log.Error("retention pass failed; nothing more was removed", "err", err)
		m.retentionPasses.WithLabelValues("failed").Inc()
	case rep.Records > 0:
		m.retentionPasses.WithLabelValues("removed").Inc()
	default:
		m.retentionPasses.WithLabelValues("nothing").Inc()
	}
	return true
}

func (t *retainer) stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done = true
	if t.timer != nil {
		t.timer.Stop()
	}
}
