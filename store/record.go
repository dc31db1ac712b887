package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/approvebot/approvebot"
	bolt "go.etcd.io/bbolt"
)

// A request is stored in two records under its id (schema 3): what it was
// created with, in requests, written once; and its state, in
// request_state, rewritten by every transition. A transition then encodes
// and writes only what can change, and the part that holds the agent's
// fields, context and chain (most of the bytes) is never re-encoded. Both
// are the JSON of approvebot.Request's own fields, disjoint, so decoding
// one and then the other into the same Request gives it whole, and a file
// of schema 2, whose requests records hold everything, reads the same.

// recordHead is what a request was created with. Its first fields are the
// ones owner reads, in this order.
type recordHead struct {
	ID             string            `json:"id"`
	Schema         string            `json:"schema"`
	Caller         string            `json:"caller"`
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
	Digest         string            `json:"digest"`
	BodyDigest     string            `json:"body_digest,omitempty"`
	Fields         approvebot.Fields `json:"fields"`
	Context        json.RawMessage   `json:"context,omitempty"`
	ActionBinding  json.RawMessage   `json:"action_binding,omitempty"`
	Chain          approvebot.Chain  `json:"chain"`
	CreatedAt      time.Time         `json:"created_at"`
}

// recordState is what transitions change.
type recordState struct {
	Deadline     time.Time                `json:"deadline"`
	Status       approvebot.Status        `json:"status"`
	Stage        int                      `json:"stage"`
	Entries      []approvebot.Entry       `json:"entries,omitempty"`
	Resolution   *approvebot.Resolution   `json:"resolution,omitempty"`
	Destinations []approvebot.Destination `json:"destinations,omitempty"`
	Version      uint64                   `json:"version"`
	Thread       []approvebot.Note        `json:"thread,omitempty"`
	Reminded     int                      `json:"reminded,omitempty"`
	Nudge        time.Time                `json:"nudge,omitzero"`
	Escalations  []approvebot.Escalated   `json:"escalations,omitempty"`
	Receipt      *approvebot.Receipt      `json:"receipt,omitempty"`
	Assertion    string                   `json:"assertion,omitempty"`
}

func headOf(r *approvebot.Request) recordHead {
	return recordHead{
		ID: r.ID, Schema: r.Schema, Caller: r.Caller, IdempotencyKey: r.IdempotencyKey, Digest: r.Digest, BodyDigest: r.BodyDigest,
		Fields: r.Fields, Context: r.Context, ActionBinding: r.ActionBinding, Chain: r.Chain, CreatedAt: r.CreatedAt,
	}
}

// request is a request holding h alone, its state zero.
func (h recordHead) request() *approvebot.Request {
	return &approvebot.Request{
		ID: h.ID, Schema: h.Schema, Caller: h.Caller, IdempotencyKey: h.IdempotencyKey, Digest: h.Digest, BodyDigest: h.BodyDigest,
		Fields: h.Fields, Context: h.Context, ActionBinding: h.ActionBinding, Chain: h.Chain, CreatedAt: h.CreatedAt,
	}
}

// storedForm gives a new request's head the form decoding its record
// gives: its JSON texts as encoding writes them (compact, with <, > and &
// escaped) and its creation time without a monotonic reading. The request
// a creation announces then has the head Get returns, which Refresh
// relies on.
func storedForm(r *approvebot.Request) error {
	for _, m := range []*json.RawMessage{&r.Context, &r.ActionBinding} {
		if len(*m) == 0 {
			*m = nil // omitted from the record: read back as nil
			continue
		}
		b, err := json.Marshal(*m)
		if err != nil {
			return fmt.Errorf("request %s: %w", r.ID, err)
		}
		*m = b
	}
	r.CreatedAt = r.CreatedAt.Round(0)
	return nil
}

func stateOf(r *approvebot.Request) recordState {
	return recordState{
		Deadline: r.Deadline, Status: r.Status, Stage: r.Stage, Entries: r.Entries, Resolution: r.Resolution,
		Destinations: r.Destinations, Version: r.Version, Thread: r.Thread, Reminded: r.Reminded, Nudge: r.Nudge,
		Escalations: r.Escalations, Receipt: r.Receipt, Assertion: r.Assertion,
	}
}

// encodeHead and encodeState are the two records of r.
func encodeHead(r *approvebot.Request) ([]byte, error) {
	v, err := json.Marshal(headOf(r))
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", r.ID, err)
	}
	return v, nil
}

func encodeState(r *approvebot.Request) ([]byte, error) {
	v, err := json.Marshal(stateOf(r))
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", r.ID, err)
	}
	return v, nil
}

// decodeRecord reads a request from its head record v (the whole record in
// a file of schema 2, which has no state bucket).
func decodeRecord(tx *bolt.Tx, id, v []byte) (*approvebot.Request, error) {
	var r approvebot.Request
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("request %s: corrupt record: %w", id, err)
	}
	states := tx.Bucket(bucketStates)
	if states == nil {
		return &r, nil
	}
	if err := decodeState(id, states.Get(id), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// decodeState reads st, the state record of request id, into r.
func decodeState(id, st []byte, r *approvebot.Request) error {
	if st == nil {
		return fmt.Errorf("request %s: corrupt record: its state is missing", id)
	}
	if decodePendingState(st, r) {
		return nil
	}
	if err := json.Unmarshal(st, r); err != nil {
		return fmt.Errorf("request %s: corrupt state record: %w", id, err)
	}
	return nil
}

// stateRecord is the record that holds a request's status: its state, or
// in a file of schema 2 the whole record (nil when there is none).
func stateRecord(tx *bolt.Tx, id []byte) []byte {
	if states := tx.Bucket(bucketStates); states != nil {
		return states.Get(id)
	}
	return tx.Bucket(bucketRequests).Get(id)
}

// putHead and putState write the two records.
func putHead(tx *bolt.Tx, id string, v []byte) error {
	return tx.Bucket(bucketRequests).Put([]byte(id), v)
}

func putState(tx *bolt.Tx, id string, v []byte) error {
	return tx.Bucket(bucketStates).Put([]byte(id), v)
}
