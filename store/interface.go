package store

import (
	"time"

	"github.com/approvebot/approvebot"
)

// Store is what the engine needs of its state: requests and their
// transitions, the queues of what is due (deadlines, reminders, outbox
// jobs), the audit log, and word of what changed. Bolt, one bbolt file, is
// the implementation; the contract below is written so that one on a
// replicated store (etcd: a compare-and-set on a key's mod revision, a
// watch on a prefix) fits behind it unchanged, and store/storetest is the
// suite every implementation passes.
//
// The contract:
//
//   - A transition (Create, Update, Deliver) is atomic: the request, the
//     outbox jobs it queues and the audit events it appends are committed
//     together or not at all. The function a transition takes is a pure
//     function of the request as stored (and of what the caller captured):
//     it may run more than once for one call, as the implementation retries
//     on a conflict or a failed batch, and only the last run's result is
//     kept. Two transitions of one request never interleave: the second
//     runs on what the first committed, so none is lost.
//   - A visible change (Change.Visible) bumps Request.Version, and every
//     destination that does not show the new version (or the thread's
//     latest reply) gets an outbox job, until Deliver records that it does.
//   - The audit log is one hash chain in commit order: each record names
//     its predecessor's digest, and sequence numbers rise by one.
//   - Reads see only committed state. Errors: ErrNotFound for an unknown
//     id, ErrClosed after Close, ErrFull when nothing more fits; any other
//     error means nothing of that transition was written.
type Store interface {
	// Create stores a new request with its first audit events and queues
	// its destinations. If a request with the same id, the same schema
	// 1.0 approval_request_id from the same caller, or the same
	// idempotency key from the same caller exists already, nothing is
	// written and the existing request is returned with created false.
	Create(r *approvebot.Request, events ...approvebot.Event) (stored *approvebot.Request, created bool, err error)
	// CreateAdmitted is Create with a last check: admit runs in the
	// transaction after the lookups that find an existing request (so a
	// retry is never refused) and before anything is written; its error
	// refuses the request, writes nothing and is returned as is. It may
	// run more than once for one call.
	CreateAdmitted(r *approvebot.Request, admit func() error, events ...approvebot.Event) (stored *approvebot.Request, created bool, err error)
	// Update applies fn to the stored request as one transition and
	// returns the request as committed. fn changes the request's state
	// only (status, stage, entries, resolution, destinations, version,
	// thread, reminders, escalations, receipt, assertion, deadline): what
	// it was created with (id, caller, digests, fields, context, binding,
	// chain, creation time) is written once, by Create, and a change fn
	// makes to it is not stored. With Change.Abort the request is left as
	// stored (fn's edits are dropped) and only the events are appended.
	// The committed functions run after the commit, before watchers hear
	// of it.
	Update(id string, fn func(r *approvebot.Request) (Change, error), committed ...func(*approvebot.Request)) (*approvebot.Request, error)
	// Deliver is the outbox's transition: fn records what destination
	// k.Dest now shows, and the job is removed unless the request changed
	// meanwhile, in which case owed is true and the job stays queued. A
	// job whose destination no longer exists is removed without calling fn.
	// The committed functions run after the commit, before watchers hear
	// of it, as Update's do, when fn ran. like, when given, is a copy of
	// the request this store returned or announced: as for Refresh, only
	// the state is then read.
	Deliver(k JobKey, like *approvebot.Request, fn func(r *approvebot.Request, d *approvebot.Destination) (Change, error), committed ...func(*approvebot.Request)) (r *approvebot.Request, owed bool, err error)
	// OnResolved registers fn to run inside the transition that makes a
	// request final, once its Receipt is set: what fn sets is committed
	// with the decision. fn must not use the store and may run more than
	// once. Register it before the first write.
	OnResolved(fn func(*approvebot.Request))
	// Watch calls fn after every committed transition that wrote a
	// request, until stop is called. Calls may come from several
	// goroutines at once, out of commit order and (in an implementation
	// that reconnects) more than once: a watcher compares Commit.Version
	// or reads the request again rather than trust the order.
	Watch(fn func(Commit)) (stop func())

	// Get returns the stored request (ErrNotFound when there is none).
	Get(id string) (*approvebot.Request, error)
	// Refresh returns the request like Get, given a copy of it that this
	// store returned or announced (in Commit.Request), however old: what
	// a request was created with is never written again, so it is taken
	// from like and only the state transitions change is read.
	Refresh(like *approvebot.Request) (*approvebot.Request, error)
	// Status returns a request's status alone, cheaply.
	Status(id string) (approvebot.Status, error)
	// Lookup finds a caller's schema 1.0 request by its approval_request_id.
	Lookup(caller, requestID string) (*approvebot.Request, error)
	// Find lists the schema 1.0 requests of any caller that agents gave
	// the id requestID (operators' commands only: it may read everything).
	Find(requestID string) ([]*approvebot.Request, error)
	// Recent calls fn with at most n of the newest requests, newest
	// first, until fn returns false.
	Recent(n int, fn func(r *approvebot.Request) bool) error
	// Each calls fn with every stored request, in no promised order.
	Each(fn func(r *approvebot.Request) error) error

	// Pending calls fn with every pending request's id and deadline,
	// soonest first.
	Pending(fn func(id string, deadline time.Time) error) error
	// EachPending calls fn with every pending request, soonest deadline
	// first, filled in only as far as says whose it is (ID, Schema,
	// Caller, IdempotencyKey, Digest, Status, Deadline): what a start
	// needs, at little more than the cost of Pending.
	EachPending(fn func(r *approvebot.Request) error) error
	// Nudges calls fn with every pending request that has a reminder due,
	// and when, soonest first.
	Nudges(fn func(id string, at time.Time) error) error
	// Jobs lists every outbox job still owed.
	Jobs() ([]JobKey, error)

	// Head is the audit log's last record's place (zero when empty).
	Head() (Head, error)
	// Record returns the place of the record at seq, false when the log
	// has none (a retention seal holds the place of the record it
	// vouches for).
	Record(seq uint64) (Head, bool, error)
	// Audit calls fn with every record after seq from, in order.
	Audit(from uint64, fn func(rec Record, raw []byte) error) error

	// PlatformData is one platform's own opaque values by key, kept under
	// name (the platform's name, or the name its data had before), which
	// no other platform's reads or writes can reach. Each Put and Delete
	// is committed on its own.
	PlatformData(name string) KV

	// Ping says whether the store can still be read.
	Ping() error
	// Close waits for transitions in flight and releases the store.
	Close() error
}

// KV is one platform's values in the store.
type KV interface {
	// Put stores data under key, replacing what was there.
	Put(key string, data []byte) error
	// Get returns the data under key, nil when there is none.
	Get(key string) ([]byte, error)
	// List returns every value by key.
	List() (map[string][]byte, error)
	// Delete removes key, if it is there.
	Delete(key string) error
}

// Commit is what one committed transition wrote, as watchers hear of it.
type Commit struct {
	ID      string // the request
	Version uint64 // its version after the commit
	Status  approvebot.Status
	// Jobs are the outbox jobs the commit queued: the destinations that
	// do not show Version yet.
	Jobs []JobKey
	// Request is the request as committed, when the store has it at hand
	// (nil otherwise). What it was created with is exactly what Get
	// returns; its state may be outdated by the time a watcher reads it
	// (Refresh reads the current one). It is shared with the caller of the
	// transition and every watcher: read it, never change it.
	Request *approvebot.Request
}

var _ Store = (*Bolt)(nil)
