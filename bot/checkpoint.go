package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/approvebot/approvebot/signing"
	"github.com/approvebot/approvebot/store"
)

// Audit checkpoints anchor the audit log outside its file. The log's records
// chain to each other, so a changed record is found; but whoever can write
// the file can cut records off its end or put back an older copy, and what
// is left still chains. A checkpoint is the log's head (sequence, digest,
// time) signed with the decision key and appended to a sink on another
// volume or in the log stream, where that writer cannot reach:
// `approvebot audit verify --checkpoints` then requires the log to hold
// every checkpointed record and to reach the newest.
//
// Checkpoints never hold up a decision: resolutions only nudge the
// checkpointer, which writes in its own goroutine, and several resolutions
// that land while it writes share the next checkpoint. A failing sink is
// logged and counted (approvebot_audit_checkpoints_total{result="failed"})
// and decisions go on: every signed decision also carries its own receipt
// (audit_seq, audit_head) to the agent, and the next checkpoint that gets
// through covers every record before it. Only at start must the sink work:
// a sink that cannot be written then is a configuration mistake, and
// approvebot refuses to start rather than run unanchored unnoticed.

// CheckpointConfig says where signed audit checkpoints go.
type CheckpointConfig struct {
	// File is appended to, one JSON line per checkpoint, and fsynced after
	// each ("" for none).
	File string
	// Log writes each checkpoint as a log line ("audit checkpoint").
	Log bool
	// Interval adds a checkpoint this often besides those at resolutions
	// (0: none), so a checkpoint also says the log was no further at that
	// time.
	Interval time.Duration
}

// CheckpointLine is one line of a checkpoint file. The fields beside the
// token repeat what it signs, for people reading the file; only the signed
// token counts, and a line whose fields differ from it is refused.
type CheckpointLine struct {
	AuditSeq   uint64 `json:"audit_seq"`
	AuditHead  string `json:"audit_head"`
	At         string `json:"at"`
	Checkpoint string `json:"checkpoint"`
}

type checkpointer struct {
	e       *Engine
	cfg     CheckpointConfig
	kick    chan struct{} // buffered: resolutions arriving during a write coalesce
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	started bool
	mu      sync.Mutex // one checkpoint at a time, so the file's lines come in log order
}

func newCheckpointer(e *Engine, cfg CheckpointConfig) *checkpointer {
	return &checkpointer{e: e, cfg: cfg, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// resolved tells the checkpointer the log has a new resolution. It never
// blocks.
func (c *checkpointer) resolved() {
	if c == nil {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// start writes the first checkpoint, which must succeed (see above), and
// then runs the checkpointer until shutdown.
func (c *checkpointer) start() error {
	if c.cfg.File != "" {
		c.checkLast()
	}
	if err := c.write("start"); err != nil {
		return err
	}
	c.started = true
	go c.run()
	return nil
}

func (c *checkpointer) run() {
	defer close(c.done)
	tick := make(chan struct{}, 1)
	var timer Timer
	arm := func() {
		if c.cfg.Interval > 0 {
			timer = c.e.clock.AfterFunc(c.cfg.Interval, func() {
				select {
				case tick <- struct{}{}:
				default:
				}
			})
		}
	}
	arm()
	for {
		var why string
		select {
		case <-c.stop:
			if timer != nil {
				timer.Stop()
			}
			return
		case <-c.kick:
			why = "resolution"
		case <-tick:
			why = "interval"
			arm()
		}
		_ = c.write(why) // logged and counted there
	}
}

// close stops the checkpointer and writes a last checkpoint, waiting for it
// at most until ctx ends. The store must still be open.
func (c *checkpointer) close(ctx context.Context) {
	if c == nil || !c.started {
		return
	}
	c.once.Do(func() { close(c.stop) })
	select {
	case <-c.done:
	case <-ctx.Done():
		return
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_ = c.write("stop")
	}()
	select {
	case <-finished:
	case <-ctx.Done():
		c.e.log.Warn("audit checkpoint at stop not finished before the deadline", "file", c.cfg.File)
	}
}

// write signs the log's current head and hands it to every sink. The error
// is the file sink's, for start.
func (c *checkpointer) write(why string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	at := c.e.clock.Now()
	line, tok, head, err := c.sign(at)
	if err != nil {
		for _, sink := range c.sinks() {
			c.failed(sink, err)
		}
		return err
	}
	if c.cfg.Log {
		c.e.log.Info("audit checkpoint", "audit_seq", head.Seq, "audit_head", head.Digest, "why", why, "checkpoint", tok)
		c.e.metrics.checkpoints.WithLabelValues("log", "written").Inc()
		c.e.metrics.checkpointAt.WithLabelValues("log").Set(float64(at.Unix()))
	}
	if c.cfg.File == "" {
		return nil
	}
	if err := appendDurably(c.cfg.File, append(line, '\n')); err != nil {
		c.failed("file", err)
		return fmt.Errorf("audit checkpoint file %s: %w", c.cfg.File, err)
	}
	c.e.metrics.checkpoints.WithLabelValues("file", "written").Inc()
	c.e.metrics.checkpointAt.WithLabelValues("file").Set(float64(at.Unix()))
	return nil
}

// sign reads the log's head and signs it as of at.
func (c *checkpointer) sign(at time.Time) (line []byte, token string, head store.Head, err error) {
	if head, err = c.e.store.Head(); err != nil {
		return nil, "", head, fmt.Errorf("read the audit head: %w", err)
	}
	if token, err = c.e.signer.SignCheckpoint(signing.Checkpoint{AuditSeq: head.Seq, AuditHead: head.Digest, At: at}); err != nil {
		return nil, "", head, err
	}
	line, err = json.Marshal(CheckpointLine{AuditSeq: head.Seq, AuditHead: head.Digest, At: at.UTC().Format(time.RFC3339Nano), Checkpoint: token})
	return line, token, head, err
}

func (c *checkpointer) sinks() []string {
	var out []string
	if c.cfg.Log {
		out = append(out, "log")
	}
	if c.cfg.File != "" {
		out = append(out, "file")
	}
	return out
}

func (c *checkpointer) failed(sink string, err error) {
	c.e.log.Error("audit checkpoint not written; decisions go on, but the log is not anchored past the last checkpoint written",
		"sink", sink, "file", c.cfg.File, "err", err)
	c.e.metrics.checkpoints.WithLabelValues(sink, "failed").Inc()
}

// checkLast holds the store against the checkpoint file's last line, so
// that an older copy of the store put back, or records cut off its end, are
// reported the moment approvebot starts on it. It only reports: restoring a
// backup after losing a disk is a legitimate thing to do, and the decisions
// it lost are the operator's to look into, with audit verify --checkpoints.
func (c *checkpointer) checkLast() {
	line, err := lastLine(c.cfg.File)
	if err != nil || line == nil {
		return // a new file, or one start will fail to write
	}
	keys, err := signing.ParseKeySet(c.e.signer.JWKS())
	if err != nil {
		return
	}
	cps, err := ReadCheckpoints(bytes.NewReader(line), c.cfg.File, keys, c.e.signer.Issuer())
	if err != nil {
		c.e.log.Warn("the last audit checkpoint cannot be checked (signed with another key?)", "file", c.cfg.File, "err", err)
		return
	}
	cp := cps[0]
	if cp.Seq == 0 {
		return
	}
	got, found, err := c.e.store.Record(cp.Seq)
	if err != nil {
		c.e.log.Warn("the last audit checkpoint cannot be checked", "file", c.cfg.File, "err", err)
		return
	}
	if found && got.Digest == cp.Digest {
		return
	}
	head, _ := c.e.store.Head()
	problem := "the store's audit log ends before it: records were cut off its end or an older copy of the file was put back"
	if found {
		problem = "the store's record there is another: the log was rewritten or an older copy of the file was put back and ran on"
	}
	c.e.metrics.behind.Set(1)
	c.e.log.Error("the store does not hold the last audit checkpoint; run approvebot audit verify --checkpoints to see what is missing",
		"file", c.cfg.File, "checkpoint_seq", cp.Seq, "checkpoint_at", cp.At, "store_head_seq", head.Seq, "problem", problem)
}

// lastLine returns the last complete line of the file at path (nil when
// the file does not exist or holds none). Only the tail is read.
func lastLine(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n := min(fi.Size(), maxAnchorLine+1)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, fi.Size()-n); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	end := bytes.LastIndexByte(buf, '\n')
	if end < 0 {
		return nil, nil
	}
	buf = buf[:end]
	line := buf[bytes.LastIndexByte(buf, '\n')+1:]
	if len(bytes.TrimSpace(line)) == 0 {
		return nil, nil
	}
	return line, nil
}

// appendDurably appends line to the file at path and syncs it (and, when it
// creates the file, its directory) before returning. If the file does not
// end in a newline (a line cut short by a crash or a full disk), one is
// written first, so the new line stands on its own.
func appendDurably(path string, line []byte) error {
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err == nil && fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err = f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	if err == nil {
		_, err = f.Write(line) // one write: O_APPEND places it whole at the end
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && created {
		err = store.SyncDir(filepath.Dir(path))
	}
	return err
}
