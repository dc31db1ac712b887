package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/approvebot/approvebot"
	bolt "go.etcd.io/bbolt"
)

// The file records the version of its layout (meta/schema_version). A
// newer approvebot moves an older file forward at open, one version at a
// time, all in the one transaction that also creates missing buckets: a
// crash mid-way leaves the file as it was. An older approvebot refuses a
// newer file rather than misread it.
//
// Versions:
//
//	1  the first release's layout.
//	2  schema 1.0 requests are found through agent_request_ids
//	   (caller ‖ approval_request_id → store id) for every caller; the
//	   audit log may begin after a retention seal (meta/audit_seal), and
//	   its first record then links to the sealed digest instead of "".
//	3  a request is two records under its id: what it was created with
//	   in requests, its state in request_state (record.go), so that a
//	   transition rewrites only the state.
const schemaVersion = 3

// oldestReadable is the oldest layout a read-only open accepts without
// migrating it: what operator commands read of a version 1 file reads the
// same (requests stored under the agent's id are still found).
const oldestReadable = 1

// migrations[i] moves a file from version i+1 to i+2.
var migrations = []func(tx *bolt.Tx) error{
	indexAgentIDs, // 1 → 2
	splitRecords,  // 2 → 3
}

// migrate brings the file's layout to schemaVersion inside tx. A file
// without a version is new (its buckets were just created) and gets the
// current one.
func migrate(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	v := meta.Get(keySchema)
	if v == nil {
		return putSchema(meta, schemaVersion)
	}
	if len(v) != 4 {
		return errors.New("not an approvebot store (malformed schema version)")
	}
	got := binary.BigEndian.Uint32(v)
	if err := newerError(got); err != nil {
		return err
	}
	if got == 0 {
		return errors.New("not an approvebot store (schema version 0)")
	}
	for ver := got; ver < schemaVersion; ver++ {
		if err := migrations[ver-1](tx); err != nil {
			return fmt.Errorf("migrate the store from schema version %d to %d: %w", ver, ver+1, err)
		}
	}
	return putSchema(meta, schemaVersion)
}

func putSchema(meta *bolt.Bucket, v uint32) error {
	return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, v))
}

// newerError refuses a file written by a newer approvebot, saying what to
// do about it.
func newerError(got uint32) error {
	if got <= schemaVersion {
		return nil
	}
	return fmt.Errorf("store schema version %d is newer than this approvebot's (%d): it was written by a newer approvebot; "+
		"run that newer version (upgrade approvebot), or, to go back to this version, restore the backup taken before the upgrade", got, schemaVersion)
}

// indexAgentIDs (1 → 2): the first release stored a schema 1.0 request
// under the approval_request_id the agent gave it. Later releases key such
// requests by an id of their own and find them through agent_request_ids,
// so that two callers may use the same id; the old requests go into that
// index too, under their caller.
func indexAgentIDs(tx *bolt.Tx) error {
	idx := tx.Bucket(bucketAgentIDs)
	return tx.Bucket(bucketRequests).ForEach(func(k, v []byte) error {
		var r struct {
			ID     string `json:"id"`
			Schema string `json:"schema"`
			Caller string `json:"caller"`
			Fields struct {
				ApprovalRequestID string `json:"approval_request_id"`
			} `json:"fields"`
		}
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("request %s: corrupt record: %w", k, err)
		}
		if r.Schema != approvebot.SchemaV1 || r.Fields.ApprovalRequestID == "" || r.Caller == "" {
			return nil
		}
		key := agentKey(r.Caller, r.Fields.ApprovalRequestID)
		if idx.Get(key) != nil {
			return nil
		}
		return idx.Put(key, []byte(r.ID))
	})
}

// splitRecords (2 → 3) splits every request record into what it was
// created with and its state. It goes a batch of keys at a time, since
// bbolt's cursors may not run over a bucket while it is written.
func splitRecords(tx *bolt.Tx) error {
	requests, states := tx.Bucket(bucketRequests), tx.Bucket(bucketStates)
	type split struct{ key, head []byte }
	var from []byte
	for {
		var batch []split
		c := requests.Cursor()
		k, v := c.First()
		if from != nil {
			if k, v = c.Seek(from); k != nil && bytes.Equal(k, from) {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(batch) < 1024; k, v = c.Next() {
			var r approvebot.Request
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("request %s: corrupt record: %w", k, err)
			}
			head, err := encodeHead(&r)
			if err != nil {
				return err
			}
			state, err := encodeState(&r)
			if err != nil {
				return err
			}
			if err := states.Put(bytes.Clone(k), state); err != nil {
				return err
			}
			batch = append(batch, split{key: bytes.Clone(k), head: head})
		}
		if len(batch) == 0 {
			return nil
		}
		for _, b := range batch {
			if err := requests.Put(b.key, b.head); err != nil {
				return err
			}
		}
		from = batch[len(batch)-1].key
	}
}
