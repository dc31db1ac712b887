// Package store owns approvebot's state: the Store interface the engine
// keeps it through (interface.go, its contract in store/storetest), and
// Bolt, which keeps it in one bbolt file: requests and their transitions,
// the index of pending requests by deadline, the outbox of chat side
// effects still owed, Teams conversation references, and the hash-chained
// audit log. Every state transition is one transaction, and the outbox jobs
// and audit events it causes are written in that same transaction, so a
// crash can lose none of them.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/approvebot/approvebot"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	bucketMeta          = []byte("meta")
	bucketRequests      = []byte("requests")            // id → what the request was created with (record.go)
	bucketStates        = []byte("request_state")       // id → its state, rewritten by transitions (schema 3)
	bucketPending       = []byte("pending_by_deadline") // 8-byte BE unix nanos ‖ id → empty
	bucketIdempotency   = []byte("idempotency")         // caller \x00 key → id
	bucketAgentIDs      = []byte("agent_request_ids")   // caller \x00 approval_request_id → id (schema 1.0)
	bucketOutbox        = []byte("outbox")              // id \x00 4-byte BE destination → job
	bucketAudit         = []byte("audit")               // 8-byte BE sequence → event
	bucketConversations = []byte("conversations")       // PlatformData("conversations") (platformdata.go)
	bucketNudges        = []byte("pending_by_nudge")    // 8-byte BE unix nanos ‖ id → empty: next reminder due

	keySchema    = []byte("schema_version")
	keyAuditHead = []byte("audit_head")
	keyAuditSeal = []byte("audit_seal") // the retention seal (retention.go)
)

// ErrNotFound is returned for an unknown request id.
var ErrNotFound = errors.New("not found")

// ErrClosed is returned once the store is closed.
var ErrClosed = errors.New("store closed")

// ErrFull is returned when a transition cannot be committed because the file
// reached Options.MaxSize or the disk is full. Nothing of the transition was
// written.
var ErrFull = errors.New("store full")

// Options tune Open.
type Options struct {
	// LockTimeout bounds the wait for bbolt's file lock (default 1 s), so a
	// second instance on the same file fails fast.
	LockTimeout time.Duration
	// MaxBatch bounds how many transitions share one commit (default 512).
	MaxBatch int
	// ReadOnly opens the file without the writer (for offline audits).
	ReadOnly bool
	// MaxSize caps the file's size in bytes (0: no cap). Transitions that
	// would grow it past the cap fail with ErrFull, so a runaway never fills
	// the disk that other services share.
	MaxSize int64
	// SkipCheck skips bbolt's consistency check of an existing file at
	// open (the other checks still run): for tools that reopen a file they
	// have just written.
	SkipCheck bool
}

// Bolt is the Store kept in one bbolt file: the default, and for now the only one.
type Bolt struct {
	db   *bolt.DB
	path string

	mu     sync.RWMutex // guards closed against sends on ops
	closed bool
	ops    chan *op
	done   chan struct{}
	max    int

	notifyMu sync.Mutex
	watchers []*watcher // copied on change, so announce reads it unlocked
	watching atomic.Pointer[[]*watcher]
	resolved func(*approvebot.Request)

	failMu    sync.Mutex
	failErr   error // set once bbolt panicked or faulted
	failStack []byte
	failed    chan struct{}
}

// Open opens or creates the file at path with mode 0600.
func Open(path string, o Options) (*Bolt, error) {
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.MaxSize < 0 || int64(int(o.MaxSize)) != o.MaxSize {
		return nil, fmt.Errorf("open %s: max size %d is out of range", path, o.MaxSize)
	}
	exists, err := inspectFile(path)
	if err != nil {
		return nil, err
	}
	db, err := openCurrent(path, &bolt.Options{Timeout: o.LockTimeout, ReadOnly: o.ReadOnly, MaxSize: int(o.MaxSize)})
	if err != nil {
		return nil, openError(path, err)
	}
	if exists && !o.SkipCheck {
		if err := checkConsistency(db); err != nil {
			db.Close()
			return nil, fmt.Errorf("open %s: it is %w: %v; restore the file from a backup", path, ErrNotStore, err)
		}
	}
	s := &Bolt{db: db, path: path, ops: make(chan *op, 4096), done: make(chan struct{}), max: o.MaxBatch, failed: make(chan struct{})}
	if o.ReadOnly {
		close(s.done)
		s.closed = true
		if err := s.checkSchema(); err != nil {
			db.Close()
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		return s, nil
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketRequests, bucketPending, bucketIdempotency, bucketAgentIDs, bucketOutbox, bucketAudit, bucketConversations, bucketNudges, bucketStates} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return migrate(tx)
	})
	if err == nil {
		err = s.checkSchema()
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	go s.writer()
	return s, nil
}

// openCurrent opens path, and opens it again if the file at path was
// replaced while the open waited for bbolt's lock: compact renames a new
// file over the old one while holding the lock, and an open waiting on the
// old one would otherwise get the unlinked file once compact lets go.
func openCurrent(path string, o *bolt.Options) (*bolt.DB, error) {
	for attempt := 0; ; attempt++ {
		before, _ := os.Stat(path)
		db, err := openBolt(path, o)
		if err != nil {
			return nil, err
		}
		after, err := os.Stat(path)
		if attempt == 3 || err != nil || before == nil || os.SameFile(before, after) {
			return db, nil
		}
		db.Close()
	}
}

// openError says why the file could not be opened in words an operator can
// act on; the raw errors bbolt and the OS give repeat the path and name no
// remedy.
func openError(path string, err error) error {
	var why string
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		why = "the file is locked by another process (is another approvebot running on it?)"
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return fmt.Errorf("open %s: it is %w (not a bbolt file, or a damaged one): %w", path, ErrNotStore, err)
	case errors.Is(err, fs.ErrNotExist):
		why = "its directory " + filepath.Dir(path) + " does not exist"
	case errors.Is(err, syscall.EISDIR):
		why = "it is a directory; store.path must name a file"
	case errors.Is(err, syscall.ENOTDIR):
		why = "a part of the path is a file, not a directory"
	case errors.Is(err, fs.ErrPermission):
		why = "permission denied: approvebot must be able to create, read and write the file and its directory"
	case errors.Is(err, syscall.EROFS):
		why = "the file system is read-only"
	case errors.Is(err, syscall.ENOSPC):
		why = "the disk is full"
	default:
		return fmt.Errorf("open %s: %w", path, err)
	}
	return fmt.Errorf("open %s: %s: %w", path, why, err)
}

func (s *Bolt) checkSchema() error {
	return s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.New("not an approvebot store (no meta bucket)")
		}
		v := meta.Get(keySchema)
		if len(v) != 4 {
			return errors.New("not an approvebot store (no schema version)")
		}
		got := binary.BigEndian.Uint32(v)
		if err := newerError(got); err != nil {
			return err
		}
		if got < schemaVersion && (!s.db.IsReadOnly() || got < oldestReadable) {
			return fmt.Errorf("store schema version %d is older than this approvebot's (%d) and was not migrated", got, schemaVersion)
		}
		return nil
	})
}

// Close waits for queued transitions to commit and closes the file.
func (s *Bolt) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.ops)
	}
	s.mu.Unlock()
	<-s.done
	if err := s.Err(); err != nil {
		// bbolt may have panicked holding its own locks: closing could
		// wait forever. The process is about to exit, which releases the
		// file.
		return err
	}
	return s.db.Close()
}

// Path is the file's path.
func (s *Bolt) Path() string { return s.path }

// watcher is one Watch subscription.
type watcher struct{ fn func(Commit) }

// Watch calls fn after every committed transition that wrote a request, in
// the goroutine of the call that made it, after its committed functions:
// within this process that is as soon as anyone can learn of it.
func (s *Bolt) Watch(fn func(Commit)) (stop func()) {
	w := &watcher{fn: fn}
	s.notifyMu.Lock()
	s.watchers = append(slices.Clip(s.watchers), w)
	ws := s.watchers
	s.watching.Store(&ws)
	s.notifyMu.Unlock()
	return func() {
		s.notifyMu.Lock()
		defer s.notifyMu.Unlock()
		i := slices.Index(s.watchers, w)
		if i < 0 {
			return
		}
		s.watchers = slices.Delete(slices.Clone(s.watchers), i, i+1)
		ws := s.watchers
		s.watching.Store(&ws)
	}
}

// OnResolved registers fn to run inside the transaction that makes a request
// final, once its Receipt is set: what fn sets on the request is stored with
// it, in the same commit. The engine signs the decision there, so the signed
// assertion exists exactly when the decision does. fn must not use the store
// and may run more than once for one transition (see commit). Register it
// before the first write.
func (s *Bolt) OnResolved(fn func(*approvebot.Request)) {
	s.notifyMu.Lock()
	s.resolved = fn
	s.notifyMu.Unlock()
}

func (s *Bolt) announce(r *approvebot.Request, jobs []JobKey) {
	ws := s.watching.Load()
	if ws == nil || r == nil {
		return
	}
	c := Commit{ID: r.ID, Version: r.Version, Status: r.Status, Jobs: jobs, Request: r}
	for _, w := range *ws {
		w.fn(c)
	}
}

// op is one transition waiting for the writer.
type op struct {
	fn   func(tx *bolt.Tx) error
	done chan error
}

// write runs fn in a write transaction, sharing the commit (and its fsync)
// with whatever other transitions are queued at that moment: group commit.
// A lone writer commits at once; under load, one fsync serves many. fn may
// run more than once (see commit), so it must derive everything from tx.
func (s *Bolt) write(fn func(tx *bolt.Tx) error) error {
	o := &op{fn: fn, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	s.ops <- o
	s.mu.RUnlock()
	return <-o.done
}

func (s *Bolt) writer() {
	defer close(s.done)
	// A fault on the memory map (a page the file no longer holds) becomes a
	// panic that commit recovers, not the end of the process.
	debug.SetPanicOnFault(true)
	batch := make([]*op, 0, s.max)
	for o := range s.ops {
		batch = append(batch[:0], o)
	more:
		for len(batch) < s.max {
			select {
			case o2, ok := <-s.ops:
				if !ok {
					break more
				}
				batch = append(batch, o2)
			default:
				break more
			}
		}
		s.commit(batch)
	}
}

type failedOp struct {
	i   int
	err error
}

func (f *failedOp) Error() string { return f.err.Error() }

// commit runs a batch in one transaction. If one op fails, the transaction is
// rolled back and that op gets its error; the others are committed without
// it, so one bad transition never takes others down or half-writes.
func (s *Bolt) commit(batch []*op) {
	if err := s.Err(); err != nil {
		for _, o := range batch {
			o.done <- err
		}
		return
	}
	defer func() {
		if p := recover(); p != nil {
			// Every op still in the batch learns that nothing was written;
			// those that were answered before the panic keep their answer.
			err := s.fail(p, debug.Stack())
			for _, o := range batch {
				select {
				case o.done <- err:
				default:
				}
			}
		}
	}()
	for len(batch) > 0 {
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, o := range batch {
				if err := o.fn(tx); err != nil {
					return &failedOp{i: i, err: err}
				}
			}
			return nil
		})
		var f *failedOp
		if errors.As(err, &f) {
			batch[f.i].done <- f.err
			batch = append(batch[:f.i:f.i], batch[f.i+1:]...)
			continue
		}
		if err != nil {
			err = commitError(err)
		}
		for _, o := range batch {
			o.done <- err
		}
		return
	}
}

// commitError marks the errors that mean "no room" as ErrFull, so callers
// can say so instead of a generic storage failure.
func commitError(err error) error {
	// bbolt formats some I/O errors with %s, dropping the errno: match the
	// text as well.
	if errors.Is(err, berrors.ErrMaxSizeReached) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(err.Error(), syscall.ENOSPC.Error()) {
		return fmt.Errorf("commit: %w: %w", ErrFull, err)
	}
	return fmt.Errorf("commit: %w", err)
}

// JobKey names an outbox job: destination Dest of request ID needs to show
// the request's current state.
type JobKey struct {
	ID   string
	Dest int
}

func (k JobKey) bytes() []byte {
	b := make([]byte, 0, len(k.ID)+5)
	b = append(b, k.ID...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint32(b, uint32(k.Dest))
}

func parseJobKey(b []byte) (JobKey, error) {
	i := bytes.IndexByte(b, 0)
	if i < 0 || len(b)-i != 5 {
		return JobKey{}, fmt.Errorf("malformed outbox key %q", b)
	}
	return JobKey{ID: string(b[:i]), Dest: int(binary.BigEndian.Uint32(b[i+1:]))}, nil
}

func pendingKey(deadline time.Time, id string) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(id)), uint64(deadline.UnixNano()))
	return append(b, id...)
}

func idemKey(caller, key string) []byte {
	return []byte(caller + "\x00" + key)
}

// agentKey is the index key of a schema 1.0 request's approval_request_id:
// agents choose those ids, so they are unique per caller only. The caller's
// name goes first, so two callers' "ar_1" are two keys. Neither part holds
// a NUL (config names are checked, agent ids are of a safe set), so the
// pair reads back unambiguously.
func agentKey(caller, requestID string) []byte {
	return []byte(caller + "\x00" + requestID)
}

// lookupAgentID finds a caller's schema 1.0 request by the id the agent
// gave it. Files written before the index existed stored such a request
// under the agent's id itself; that record is the caller's only if it says
// so.
func lookupAgentID(tx *bolt.Tx, caller, requestID string) (*approvebot.Request, error) {
	if b := tx.Bucket(bucketAgentIDs); b != nil {
		if id := b.Get(agentKey(caller, requestID)); id != nil {
			return getRequest(tx, string(id))
		}
	}
	r, err := getRequest(tx, requestID)
	if err != nil {
		return nil, err
	}
	if r.Schema != approvebot.SchemaV1 || r.Caller != caller || r.ID != r.Fields.ApprovalRequestID {
		return nil, ErrNotFound
	}
	return r, nil
}

func getRequest(tx *bolt.Tx, id string) (*approvebot.Request, error) {
	k := []byte(id)
	v := tx.Bucket(bucketRequests).Get(k)
	if v == nil {
		return nil, ErrNotFound
	}
	return decodeRecord(tx, k, v)
}

// Get returns the stored request.
func (s *Bolt) Get(id string) (*approvebot.Request, error) {
	var r *approvebot.Request
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		r, err = getRequest(tx, id)
		return err
	})
	return r, err
}

// Refresh returns the stored request, reading only its state record: its
// head (what it was created with, written once by Create) is copied from
// like. It saves decoding the head, most of a request's bytes, where a
// reader already holds the request from an announcement.
func (s *Bolt) Refresh(like *approvebot.Request) (*approvebot.Request, error) {
	var r *approvebot.Request
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		r, err = refresh(tx, like.ID, like)
		return err
	})
	return r, err
}

// refresh reads request id as stored, taking its head from like when given.
func refresh(tx *bolt.Tx, id string, like *approvebot.Request) (*approvebot.Request, error) {
	states := tx.Bucket(bucketStates)
	if like == nil || states == nil { // schema 2: one record holds everything
		return getRequest(tx, id)
	}
	k := []byte(id)
	st := states.Get(k)
	if st == nil && tx.Bucket(bucketRequests).Get(k) == nil {
		return nil, ErrNotFound
	}
	// Only the head's fields are copied: decoding the state into a copy
	// of like whole would write into the slices like shares with its
	// other readers.
	r := headOf(like).request()
	if err := decodeState(k, st, r); err != nil {
		return nil, err
	}
	return r, nil
}

// Lookup finds a caller's schema 1.0 request by its approval_request_id.
func (s *Bolt) Lookup(caller, requestID string) (*approvebot.Request, error) {
	var r *approvebot.Request
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		r, err = lookupAgentID(tx, caller, requestID)
		return err
	})
	return r, err
}

// Find lists the schema 1.0 requests, of any caller, that agents gave the
// id requestID, for operators who know only that id. It reads the whole
// index: operators' commands only.
func (s *Bolt) Find(requestID string) ([]*approvebot.Request, error) {
	var out []*approvebot.Request
	err := s.view(func(tx *bolt.Tx) error {
		if r, err := getRequest(tx, requestID); err == nil && r.Schema == approvebot.SchemaV1 && r.ID == r.Fields.ApprovalRequestID {
			out = append(out, r) // stored before the index existed
		}
		b := tx.Bucket(bucketAgentIDs)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			i := bytes.IndexByte(k, 0)
			if i < 0 || string(k[i+1:]) != requestID {
				return nil
			}
			r, err := getRequest(tx, string(v))
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Status returns a request's status alone. It decodes one field of the
// record, so it costs little CPU and, unlike Get, little stack: it is what a
// goroutine about to park for minutes should call.
func (s *Bolt) Status(id string) (approvebot.Status, error) {
	var st struct {
		Status approvebot.Status `json:"status"`
	}
	err := s.view(func(tx *bolt.Tx) error {
		v := stateRecord(tx, []byte(id))
		if v == nil {
			return ErrNotFound
		}
		if err := json.Unmarshal(v, &st); err != nil {
			return fmt.Errorf("request %s: corrupt record: %w", id, err)
		}
		return nil
	})
	return st.Status, err
}

// Create stores a new request with its first audit events and queues its
// destinations. If a request with the same id, the same schema 1.0
// approval_request_id from the same caller, or the same idempotency key
// from the same caller, exists already, nothing is written and the existing
// request is returned with created false.
func (s *Bolt) Create(r *approvebot.Request, events ...approvebot.Event) (stored *approvebot.Request, created bool, err error) {
	return s.CreateAdmitted(r, nil, events...)
}

// CreateAdmitted is Create with a last check: admit runs inside the
// transaction after the lookups that find an existing request (so a retry
// of one is never refused) and before anything is written. Its error
// refuses the request, writes nothing and is returned as is. Like every
// transition, admit may run more than once for one call.
func (s *Bolt) CreateAdmitted(r *approvebot.Request, admit func() error, events ...approvebot.Event) (stored *approvebot.Request, created bool, err error) {
	// Canonicalizing the audit details here keeps that work out of the
	// single writer every commit waits for.
	prepared, err := prepareEvents(events)
	if err != nil {
		return nil, false, err
	}
	// So is encoding the request: it is written as given, unless its
	// transition seals a decision (save encodes the state again then).
	if err := storedForm(r); err != nil {
		return nil, false, err
	}
	head, err := encodeHead(r)
	if err != nil {
		return nil, false, err
	}
	state, err := encodeState(r)
	if err != nil {
		return nil, false, err
	}
	var jobs []JobKey
	err = s.write(func(tx *bolt.Tx) error {
		stored, created, jobs = nil, false, nil
		if old, err := getRequest(tx, r.ID); err == nil {
			stored = old
			return nil
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if r.Schema == approvebot.SchemaV1 {
			old, err := lookupAgentID(tx, r.Caller, r.Fields.ApprovalRequestID)
			if err == nil {
				stored = old
				return nil
			} else if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		idem := tx.Bucket(bucketIdempotency)
		if r.IdempotencyKey != "" {
			if id := idem.Get(idemKey(r.Caller, r.IdempotencyKey)); id != nil {
				old, err := getRequest(tx, string(id))
				if err != nil {
					return err
				}
				stored = old
				return nil
			}
		}
		if admit != nil {
			if err := admit(); err != nil {
				return err
			}
		}
		if r.IdempotencyKey != "" {
			if err := idem.Put(idemKey(r.Caller, r.IdempotencyKey), []byte(r.ID)); err != nil {
				return err
			}
		}
		if r.Schema == approvebot.SchemaV1 {
			if err := tx.Bucket(bucketAgentIDs).Put(agentKey(r.Caller, r.Fields.ApprovalRequestID), []byte(r.ID)); err != nil {
				return err
			}
		}
		if err := putHead(tx, r.ID, head); err != nil {
			return err
		}
		var err error
		jobs, err = s.save(tx, nil, r, state, prepared)
		stored, created = r, true
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if created {
		s.announce(stored, jobs)
	}
	return stored, created, nil
}

// Change is what a transition did besides changing the request.
type Change struct {
	Events []approvebot.Event
	// Visible is true when chat messages must be brought up to date.
	Visible bool
	// Abort leaves the request as it was (the events are still written).
	Abort bool
}

// Update applies a transition to a request in one transaction: fn changes r
// in place (it must be a pure function of r, as it may run more than once).
// Only r's state is written back (record.go): what r was created with stays
// as Create wrote it.
// If the change is visible, the request's version is bumped and every
// destination that shows it gets an outbox job.
//
// committed, when given, runs after the commit and before watchers hear of
// it (the outbox among them): the engine answers waiting agents there, so a
// decision reaches the agent before chat updates compete with it for the CPU.
func (s *Bolt) Update(id string, fn func(r *approvebot.Request) (Change, error), committed ...func(*approvebot.Request)) (*approvebot.Request, error) {
	var out *approvebot.Request
	var jobs []JobKey
	var aborted bool
	err := s.write(func(tx *bolt.Tx) error {
		out, jobs, aborted = nil, nil, false
		r, err := getRequest(tx, id)
		if err != nil {
			return err
		}
		was := priorOf(r)
		ch, err := fn(r)
		if err != nil {
			return err
		}
		if ch.Abort {
			aborted = true
			// fn may have changed r before it chose to abort: answer with
			// the request as stored. Aborts are rare (refused clicks), so
			// the second decode is paid only then.
			if out, err = getRequest(tx, id); err != nil {
				return err
			}
			return appendEvents(tx, ch.Events)
		}
		if ch.Visible {
			r.Version++
		}
		prepared, err := prepareEvents(ch.Events)
		if err != nil {
			return err
		}
		jobs, err = s.save(tx, &was, r, nil, prepared)
		out = r
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, f := range committed {
		f(out)
	}
	if !aborted {
		s.announce(out, jobs)
	}
	return out, nil
}

// prior is what save needs to know of a request before its transition:
// where it stood in the deadline index.
type prior struct {
	final    bool
	deadline time.Time
	nudge    time.Time
}

func priorOf(r *approvebot.Request) prior {
	return prior{final: r.Status.Final(), deadline: r.Deadline, nudge: r.Nudge}
}

// save writes r's state (whose state before the transition was old, or nil
// when new; state, when given, is r's state already encoded), keeps the
// deadline and reminder indexes in step, appends events and queues outbox
// jobs for every destination that does not show r's current version. What
// r was created with is written once, by Create: a transition rewrites only
// the state, and the indexes only when what they hold moved.
func (s *Bolt) save(tx *bolt.Tx, old *prior, r *approvebot.Request, state []byte, events []preparedEvent) ([]JobKey, error) {
	final := r.Status.Final()
	if old == nil || old.final != final || !old.deadline.Equal(r.Deadline) {
		pending := tx.Bucket(bucketPending)
		if old != nil && !old.final {
			if err := pending.Delete(pendingKey(old.deadline, r.ID)); err != nil {
				return nil, err
			}
		}
		if !final {
			if err := pending.Put(pendingKey(r.Deadline, r.ID), nil); err != nil {
				return nil, err
			}
		}
	}
	if old == nil || old.final != final || !old.nudge.Equal(r.Nudge) {
		if err := saveNudge(tx, old, r); err != nil {
			return nil, err
		}
	}
	resolved, err := appendPrepared(tx, events)
	if err != nil {
		return nil, err
	}
	if resolved != nil && r.Resolution != nil && r.Status.Final() && (old == nil || !old.final) {
		r.Receipt = &approvebot.Receipt{AuditSeq: resolved.Seq, AuditHead: resolved.Digest}
		s.notifyMu.Lock()
		seal := s.resolved
		s.notifyMu.Unlock()
		if seal != nil {
			seal(r)
		}
		state = nil
	}
	if state == nil {
		var err error
		if state, err = encodeState(r); err != nil {
			return nil, err
		}
	}
	if err := putState(tx, r.ID, state); err != nil {
		return nil, err
	}
	var jobs []JobKey
	outbox := tx.Bucket(bucketOutbox)
	for i, d := range r.Destinations {
		stale := d.State == approvebot.DeliveryQueued ||
			(d.State == approvebot.DeliveryPosted && (d.Shown < r.Version || d.Replied < len(r.Thread)))
		if !stale {
			continue
		}
		k := JobKey{ID: r.ID, Dest: i}
		if err := outbox.Put(k.bytes(), binary.BigEndian.AppendUint64(nil, r.Version)); err != nil {
			return nil, err
		}
		jobs = append(jobs, k)
	}
	return jobs, nil
}

// Deliver records what a destination now shows, in one transaction, and
// removes its outbox job once the destination is up to date. It returns the
// request as stored and whether the job is still owed (the request changed
// while it was being shown). Given like, it reads only the request's state
// (see Refresh): the outbox holds a copy of every request it delivers.
func (s *Bolt) Deliver(k JobKey, like *approvebot.Request, fn func(r *approvebot.Request, d *approvebot.Destination) (Change, error), committed ...func(*approvebot.Request)) (*approvebot.Request, bool, error) {
	if like != nil && like.ID != k.ID {
		return nil, false, fmt.Errorf("deliver %s: given a copy of request %s", k.ID, like.ID)
	}
	var out *approvebot.Request
	var owed bool
	var jobs []JobKey
	err := s.write(func(tx *bolt.Tx) error {
		out, owed, jobs = nil, false, nil
		r, err := refresh(tx, k.ID, like)
		if err != nil {
			return err
		}
		was := priorOf(r)
		if k.Dest >= len(r.Destinations) {
			return tx.Bucket(bucketOutbox).Delete(k.bytes())
		}
		ch, err := fn(r, &r.Destinations[k.Dest])
		if err != nil {
			return err
		}
		if ch.Visible {
			r.Version++
		}
		if err := tx.Bucket(bucketOutbox).Delete(k.bytes()); err != nil {
			return err
		}
		prepared, err := prepareEvents(ch.Events)
		if err != nil {
			return err
		}
		jobs, err = s.save(tx, &was, r, nil, prepared)
		for _, j := range jobs {
			if j == k {
				owed = true
			}
		}
		out = r
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if out != nil { // nil: the job's destination was gone, and fn did not run
		for _, f := range committed {
			f(out)
		}
	}
	s.announce(out, jobs)
	return out, owed, nil
}

// Jobs lists every outbox job still owed, for the worker at start.
func (s *Bolt) Jobs() ([]JobKey, error) {
	var out []JobKey
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, _ []byte) error {
			j, err := parseJobKey(k)
			if err != nil {
				return err
			}
			out = append(out, j)
			return nil
		})
	})
	return out, err
}

// Pending calls fn with the id and deadline of every pending request, soonest
// deadline first, without loading the requests.
func (s *Bolt) Pending(fn func(id string, deadline time.Time) error) error {
	return s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
			if len(k) < 9 {
				return fmt.Errorf("malformed pending key %q", k)
			}
			return fn(string(k[8:]), time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))))
		})
	})
}

// EachPending calls fn with every pending request, soonest deadline first,
// as far as says whose it is: its id, schema, caller, idempotency key and
// digest (the first fields of the record; the rest is not read, so this
// costs little more than Pending), and the deadline from the index.
func (s *Bolt) EachPending(fn func(r *approvebot.Request) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		requests := tx.Bucket(bucketRequests)
		return tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
			if len(k) < 9 {
				return fmt.Errorf("malformed pending key %q", k)
			}
			id := k[8:]
			v := requests.Get(id)
			if v == nil {
				return fmt.Errorf("pending request %s: %w", id, ErrNotFound)
			}
			r, err := owner(v)
			if err != nil {
				return fmt.Errorf("request %s: corrupt record: %w", id, err)
			}
			r.Status = approvebot.StatusPending
			r.Deadline = time.Unix(0, int64(binary.BigEndian.Uint64(k[:8])))
			return fn(r)
		})
	})
}

// owner reads a record's id, schema, caller, idempotency key and digest.
// Records are written by json.Marshal, so these come first, as plain
// strings; reading just them is what keeps a start quick with many
// requests pending. A record laid out otherwise is decoded whole.
func owner(v []byte) (*approvebot.Request, error) {
	r := &approvebot.Request{}
	i, seen := 0, 0
	ws := func() {
		for i < len(v) && (v[i] == ' ' || v[i] == '\n' || v[i] == '\t' || v[i] == '\r') {
			i++
		}
	}
	ws()
	if i >= len(v) || v[i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	i++
	for seen < 4 {
		ws()
		if i < len(v) && v[i] == ',' {
			i++
			ws()
		}
		key, n, ok := jsonString(v[i:])
		if !ok {
			return ownerSlow(v)
		}
		i += n
		ws()
		if i >= len(v) || v[i] != ':' {
			return ownerSlow(v)
		}
		i++
		ws()
		val, n, ok := jsonString(v[i:])
		if !ok {
			return ownerSlow(v)
		}
		i += n
		switch key {
		case "id":
			r.ID, seen = val, seen+1
		case "schema":
			r.Schema, seen = val, seen+1
		case "caller":
			r.Caller, seen = val, seen+1
		case "digest":
			r.Digest, seen = val, seen+1
		case "idempotency_key":
			r.IdempotencyKey = val
		default:
			return ownerSlow(v)
		}
	}
	if r.ID == "" || r.Caller == "" {
		return nil, errors.New("no id or caller")
	}
	return r, nil
}

// jsonString reads the JSON string at the start of b: its value and length.
func jsonString(b []byte) (string, int, bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", 0, false
	}
	escaped := false
	for j := 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			if !escaped {
				return string(b[1:j]), j + 1, true
			}
			var s string
			if json.Unmarshal(b[:j+1], &s) != nil {
				return "", 0, false
			}
			return s, j + 1, true
		}
	}
	return "", 0, false
}

func ownerSlow(v []byte) (*approvebot.Request, error) {
	var r approvebot.Request
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, err
	}
	if r.ID == "" || r.Caller == "" {
		return nil, errors.New("no id or caller")
	}
	return &approvebot.Request{ID: r.ID, Schema: r.Schema, Caller: r.Caller, IdempotencyKey: r.IdempotencyKey, Digest: r.Digest}, nil
}

// Recent calls fn with the newest stored requests, newest first (ids sort
// by creation time), at most n of them, until fn returns false.
func (s *Bolt) Recent(n int, fn func(r *approvebot.Request) bool) error {
	return s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRequests).Cursor()
		for k, v := c.Last(); k != nil && n > 0; k, v = c.Prev() {
			n--
			r, err := decodeRecord(tx, k, v)
			if err != nil {
				return err
			}
			if !fn(r) {
				return nil
			}
		}
		return nil
	})
}

// Each calls fn for every stored request (oldest id order is not promised).
func (s *Bolt) Each(fn func(r *approvebot.Request) error) error {
	return s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRequests).ForEach(func(k, v []byte) error {
			r, err := decodeRecord(tx, k, v)
			if err != nil {
				return err
			}
			return fn(r)
		})
	})
}

// Stats counts what the store holds.
type Stats struct {
	Requests, Pending, Outbox, Audit int
	FileBytes                        int64
}

// Stats counts the buckets.
func (s *Bolt) Stats() (Stats, error) {
	var st Stats
	err := s.view(func(tx *bolt.Tx) error {
		st.Requests = tx.Bucket(bucketRequests).Stats().KeyN
		st.Pending = tx.Bucket(bucketPending).Stats().KeyN
		st.Outbox = tx.Bucket(bucketOutbox).Stats().KeyN
		st.Audit = tx.Bucket(bucketAudit).Stats().KeyN
		st.FileBytes = tx.Size()
		return nil
	})
	return st, err
}

// Ping checks that the file can still be read.
func (s *Bolt) Ping() error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if err := s.Err(); err != nil {
		return err
	}
	_, err := os.Stat(s.path)
	if err != nil {
		return err
	}
	return s.view(func(tx *bolt.Tx) error { return nil })
}
