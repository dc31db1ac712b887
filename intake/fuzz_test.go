package intake

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/canon"
	"github.com/approvebot/approvebot/intake/intaketest"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(tutorialBody))
	f.Add([]byte(`{"type":"approval_request","action":"x","requested_at":"2026-04-23T12:00:00Z","context":{"a":[1,{"b":null}]}}`))
	for _, name := range []string{"agt_v1_nulls.json", "agt_v1_full.json", "agt_v1_binding.json"} {
		f.Add(readFile(f, name))
	}
	body, _ := intaketest.V1Body(intaketest.V1{SubjectID: intaketest.Str("ü"), IncludeBinding: true, Context: intaketest.Object{{Key: "k", Value: "v"}}})
	f.Add(body)
	// AGT's own id shapes, a naive expires_at and the model's optional fields.
	body, _ = intaketest.V1Body(intaketest.V1{ApprovalRequestID: "ar_01HZX3K9Q8W2V7N5M4B6C1D0EF", PolicyDecisionID: "pd_1",
		ApprovalChainID: "chain.v2:eu~1", NaiveExpiry: true, Extra: intaketest.Object{
			{Key: "requested_at", Value: "2026-06-11T12:00:01"}, {Key: "fail_closed_on_timeout", Value: false}, {Key: "status", Value: "pending"}}})
	f.Add(body)

	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := Parse(body)
		if err != nil {
			if _, ok := err.(*approvebot.Error); !ok {
				t.Fatalf("error %T is not *approvebot.Error: %v", err, err)
			}
			return
		}
		// Check the digest with a different reader than Parse's.
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("accepted a body encoding/json refuses: %v", err)
		}
		switch s.Schema {
		case approvebot.SchemaLegacy:
			want, err := canon.DigestOf(m)
			if err != nil || s.Digest != want {
				t.Fatalf("legacy digest %s, recomputed %s (%v)", s.Digest, want, err)
			}
		case approvebot.SchemaV1:
			x := map[string]any{}
			for _, k := range presented {
				v, ok := m[k]
				if !ok {
					t.Fatalf("accepted without %s", k)
				}
				x[k] = v
			}
			want, err := canon.DigestOf(x)
			if err != nil || s.Digest != want || s.Fields.InputDigest != want {
				t.Fatalf("input digest %s (body %s), recomputed %s (%v)", s.Digest, s.Fields.InputDigest, want, err)
			}
			if b, ok := m["action_binding"]; ok {
				got, err := canon.DigestOf(b)
				if err != nil || got != s.Fields.ActionDigest {
					t.Fatalf("binding digest %s, action_digest %s (%v)", got, s.Fields.ActionDigest, err)
				}
			}
			if _, err := s.ExpiresAt(); err != nil {
				t.Fatalf("accepted expires_at %q: %v", s.Fields.ExpiresAt, err)
			}
			for _, id := range []string{s.Fields.ApprovalRequestID, s.Fields.PolicyDecisionID, s.Fields.ApprovalChainID} {
				if !ValidID(id) || len(id) > 128 || strings.ContainsAny(id, "/%?#& \\\x00<>\"'") {
					t.Fatalf("accepted id %q", id)
				}
			}
		default:
			t.Fatalf("schema %q", s.Schema)
		}
	})
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-04-23T12:00:00.123456+00:00", "2026-04-23T12:00:00Z", "2026-06-11T12:10:01.000000",
		"2026-06-11T12:10:01", "2026-06-11T12:10:01.5-07:00", "2026-06-11T12:10:01,5", "0000-01-01T00:00:00", "9999-12-31T23:59:59.999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, naive, err := ParseTime(s)
		if err != nil {
			if !got.IsZero() || naive {
				t.Fatalf("error %v with time %v, naive %v", err, got, naive)
			}
			return
		}
		if !naive {
			// Aware: RFC 3339 reads it the same.
			want, err := time.Parse(time.RFC3339Nano, s)
			if err != nil || !want.Equal(got) {
				t.Fatalf("aware %q: %v, RFC 3339 reads %v (%v)", s, got, want, err)
			}
			return
		}
		// Naive: the same wall time with a UTC offset added is the same instant.
		if got.Location() != time.UTC {
			t.Fatalf("naive %q read in %v", s, got.Location())
		}
		aware, err := time.Parse(time.RFC3339Nano, s+"Z")
		if err != nil || !aware.Equal(got) {
			t.Fatalf("naive %q read as %v; with Z it is %v (%v)", s, got, aware, err)
		}
	})
}
