package store

import (
	"encoding/json"
	"testing"
)

// RecordDigest writes the canonical form by hand; digestByMarshal is what the
// digest means. They must agree on every record, or audits break.
func TestRecordDigestMatchesDefinition(t *testing.T) {
	tests := []struct {
		name string
		rec  Record
	}{
		{"typical", Record{Seq: 1, Type: "approval_requested", RequestID: "ar_0123", At: "2026-01-02T03:04:05.123456789Z",
			Actor: "payments-agent", Detail: json.RawMessage(`{"schema":"legacy","fields":{"b":1,"a":[true,null,"x"]}}`), Prev: ""}},
		{"no actor, no detail", Record{Seq: 7, Type: "message_posted", RequestID: "ar_1", At: "t", Prev: "sha256:ab"}},
		{"null detail", Record{Seq: 2, Type: "x", Detail: json.RawMessage(`null`)}},
		{"escapes", Record{Seq: 3, Type: "q\"b\\s\b\f\n\r\t\x00\x1f\x7f", Actor: "<a&b>\u2028\u2029é😀", RequestID: "\xff\xfe", At: "\x01"}},
		{"html and numbers in detail", Record{Seq: 4, Type: "t", Detail: json.RawMessage(`{"h":"<&>","n":[1e2,0.1,-0,123456789012345678]}`)}},
		{"detail with spaces", Record{Seq: 5, Type: "t", Detail: json.RawMessage(" { \"b\" : 1 , \"a\" : 2 } ")}},
		{"huge sequence", Record{Seq: 1<<53 + 1, Type: "t"}},
		{"largest sequence", Record{Seq: ^uint64(0), Type: "t"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := digestByMarshal(tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := RecordDigest(tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("RecordDigest = %s, want %s", got, want)
			}
		})
	}
}

func TestRecordDigestRefusesBadDetail(t *testing.T) {
	for _, d := range []string{`{`, `{"a":1}{`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `  `} {
		if _, err := RecordDigest(Record{Seq: 1, Type: "t", Detail: json.RawMessage(d)}); err == nil {
			t.Errorf("detail %q: want an error", d)
		}
		if _, err := digestByMarshal(Record{Seq: 1, Type: "t", Detail: json.RawMessage(d)}); err == nil {
			t.Errorf("detail %q: the definition accepts it; this test's premise is wrong", d)
		}
	}
}

func FuzzRecordDigest(f *testing.F) {
	f.Add(uint64(1), "approval_requested", "ar_0123", "2026-01-02T03:04:05Z", "agent", `{"a":1}`, "")
	f.Add(uint64(9), "t\x00\"", "\xff", "", "<&>\u2028", `[1e400]`, "sha256:00")
	f.Add(uint64(1<<60), "", "", "", "", ``, "")
	f.Add(uint64(3), "x", "y", "z", "", `{"b":"\u00e9","a":-0.0}`, "p")
	f.Fuzz(func(t *testing.T, seq uint64, typ, id, at, actor, detail, prev string) {
		rec := Record{Seq: seq, Type: typ, RequestID: id, At: at, Actor: actor, Prev: prev}
		if detail != "" {
			rec.Detail = json.RawMessage(detail)
		}
		want, werr := digestByMarshal(rec)
		got, gerr := RecordDigest(rec)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("definition error %v, RecordDigest error %v", werr, gerr)
		}
		if werr == nil && got != want {
			t.Fatalf("RecordDigest = %s, want %s", got, want)
		}
	})
}

// go test -run=^$ -bench=RecordDigest ./store
func BenchmarkRecordDigest(b *testing.B) {
	rec := Record{Seq: 12345, Type: "approval_requested", RequestID: "ar_0123456789abcdef0123456789abcdef",
		At: "2026-01-02T03:04:05.123456789Z", Actor: "payments-agent", Prev: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		Detail: json.RawMessage(`{"digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","fields":{"type":"approval_request","rule_name":"approve-large-transfer","policy_name":"financial-approvals","agent_id":"payments-agent","action":"transfer","approvers":["treasury-ops","compliance"],"requested_at":"2026-01-02T03:04:05.123456+00:00"},"schema":"legacy"}`)}
	b.Run("by-marshal", func(b *testing.B) {
		for b.Loop() {
			if _, err := digestByMarshal(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if _, err := RecordDigest(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	detail, _ := canonicalDetail(rec.Detail)
	b.Run("direct-prepared", func(b *testing.B) {
		for b.Loop() {
			if _, err := recordDigest(rec, detail); err != nil {
				b.Fatal(err)
			}
		}
	})
}
