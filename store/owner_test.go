package store

import (
	"encoding/json"
	"testing"

	"github.com/approvebot/approvebot"
)

// owner reads the first fields of a record as json.Unmarshal would, and
// never panics on a damaged one.
func FuzzOwner(f *testing.F) {
	for _, r := range []approvebot.Request{
		{ID: "ar_1", Schema: approvebot.SchemaLegacy, Caller: "payments-agent", Digest: "sha256:00"},
		{ID: "ar_2", Schema: approvebot.SchemaV1, Caller: "a\"b\\c\u00e9\u2028", IdempotencyKey: "k<>&", Digest: "sha256:ff"},
	} {
		b, _ := json.Marshal(r)
		f.Add(b)
	}
	f.Add([]byte(` { "id" : "x" , "schema":"s","caller":"c","digest":"d"}`))
	f.Add([]byte(`{"id":"x","status":"pending","caller":"c"}`))
	f.Add([]byte(`{"id":"x\u0041","schema":`))
	f.Fuzz(func(t *testing.T, v []byte) {
		got, err := owner(v)
		var want approvebot.Request
		if json.Unmarshal(v, &want) != nil {
			return // damaged: any error, or the fields it could read, will do
		}
		if err != nil {
			if want.ID != "" && want.Caller != "" {
				t.Fatalf("owner(%q) failed: %v; json.Unmarshal reads id %q caller %q", v, err, want.ID, want.Caller)
			}
			return
		}
		if got.ID != want.ID || got.Schema != want.Schema || got.Caller != want.Caller || got.IdempotencyKey != want.IdempotencyKey || got.Digest != want.Digest {
			t.Fatalf("owner(%q) = %+v, json.Unmarshal reads %+v", v, *got, want)
		}
	})
}
