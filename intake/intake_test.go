package intake

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/canon"
	"github.com/approvebot/approvebot/intake/intaketest"
)

const tutorialBody = `{
  "type": "approval_request",
  "rule_name": "approve-large-transfer",
  "policy_name": "financial-approvals",
  "agent_id": "payments-agent",
  "action": "transfer",
  "approvers": ["treasury-ops", "compliance"],
  "requested_at": "2026-04-23T12:00:00.123456+00:00"
}`

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseLegacy(t *testing.T) {
	tests := []struct {
		name, body, wantAt string
	}{
		{"tutorial body", tutorialBody, "2026-04-23T12:00:00.123456Z"},
		{"Z offset", strings.Replace(tutorialBody, "+00:00", "Z", 1), "2026-04-23T12:00:00.123456Z"},
		{"no fraction", strings.Replace(tutorialBody, ".123456+00:00", "+00:00", 1), "2026-04-23T12:00:00Z"},
		{"other offset", strings.Replace(tutorialBody, "+00:00", "+02:00", 1), "2026-04-23T10:00:00.123456Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if s.Schema != approvebot.SchemaLegacy {
				t.Errorf("Schema = %q", s.Schema)
			}
			f := s.Fields
			if f.Type != "approval_request" || f.RuleName != "approve-large-transfer" || f.PolicyName != "financial-approvals" ||
				f.AgentID != "payments-agent" || f.Action != "transfer" || strings.Join(f.Approvers, ",") != "treasury-ops,compliance" {
				t.Errorf("Fields = %+v", f)
			}
			var raw map[string]any
			_ = json.Unmarshal([]byte(tt.body), &raw)
			if f.RequestedAt != raw["requested_at"] {
				t.Errorf("RequestedAt = %q, want the string as received %q", f.RequestedAt, raw["requested_at"])
			}
			at, _, err := ParseTime(f.RequestedAt)
			if err != nil || !at.Equal(mustTime(t, tt.wantAt)) {
				t.Errorf("ParseTime(requested_at) = %v, %v; want %s", at, err, tt.wantAt)
			}
			want, _ := canon.Digest([]byte(tt.body))
			if s.Digest != want {
				t.Errorf("Digest = %s, want %s", s.Digest, want)
			}
			if _, err := s.ExpiresAt(); err == nil {
				t.Error("legacy ExpiresAt() gave no error")
			}
		})
	}
}

func TestParseLegacyDigestIgnoresLayout(t *testing.T) {
	// A retry re-encoded with other spacing and key order is the same request.
	a, err := Parse([]byte(tutorialBody))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte(`{"requested_at":"2026-04-23T12:00:00.123456+00:00","approvers":["treasury-ops","compliance"],"action":"transfer","agent_id":"payments-agent","policy_name":"financial-approvals","rule_name":"approve-large-transfer","type":"approval_request"}`))
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != b.Digest || a.Digest != "sha256:ee268a92d8c1804ff10eaae986f4476628a85210b2c9315f9297885314956836" {
		t.Errorf("digests %s and %s", a.Digest, b.Digest)
	}
	c, _ := Parse([]byte(strings.Replace(tutorialBody, `"transfer"`, `"transfer2"`, 1)))
	if c == nil || c.Digest == a.Digest {
		t.Error("a different action gave the same digest")
	}
}

func TestParseLegacyMinimal(t *testing.T) {
	// agent_id may be "*" or empty, approvers empty, the rest absent.
	for _, body := range []string{
		`{"type":"approval_request","rule_name":"","policy_name":"","agent_id":"*","action":"transfer","approvers":[],"requested_at":"2026-04-23T12:00:00+00:00"}`,
		`{"type":"approval_request","action":"transfer","requested_at":"2026-04-23T12:00:00Z"}`,
	} {
		s, err := Parse([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if len(s.Fields.Approvers) != 0 || s.Fields.Action != "transfer" {
			t.Errorf("Fields = %+v", s.Fields)
		}
	}
}

func TestParseLegacyFromHelper(t *testing.T) {
	body, fields := intaketest.LegacyBody(intaketest.Legacy{
		AgentID: "*", Approvers: []string{}, RequestedAt: time.Date(2026, 4, 23, 12, 0, 0, 123456000, time.UTC),
		Context: intaketest.Object{{Key: "amount", Value: 5000}},
	})
	s, err := Parse(body)
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if s.Fields.AgentID != "*" || s.Fields.RequestedAt != fields["requested_at"] || string(s.Context) != `{"amount": 5000}` {
		t.Errorf("Fields = %+v, context %s", s.Fields, s.Context)
	}
}

// The testdata bodies were made by AGT's own code (approval_protocol models
// and digest, and build_webhook_request's json.dumps), not by this package.
func TestParseV1FromAGT(t *testing.T) {
	t.Run("nulls and no fraction", func(t *testing.T) {
		s, err := Parse(readFile(t, "agt_v1_nulls.json"))
		if err != nil {
			t.Fatal(err)
		}
		f := s.Fields
		if s.Schema != approvebot.SchemaV1 || f.SchemaVersion != "1.0" || f.SubjectID != nil || f.TargetResource != nil ||
			f.ApprovalRequestID != "ar_9b2e4f6a8c0d1e3f5a7b9c1d3e5f7a9b" || f.PolicyDecisionID != "pd_4f1c2a9e8b7d6c5a4f3e2d1c0b9a8f7e" ||
			f.AgentID != "payments-agent" || f.Operation != "tool.invoke" || f.PolicyVersion != "2026.06.11" ||
			f.ApprovalChainID != "high-risk-tools" || f.ApprovalChainVersion != "3" || f.ExpiresAt != "2026-06-11T12:10:01+00:00" {
			t.Errorf("Fields = %+v", f)
		}
		if s.Digest != "sha256:8b7abc766eb71d29b4dfa5703549e6e3187ecbd087534c6ea94fab93db09c3b3" || s.Digest != f.InputDigest {
			t.Errorf("Digest = %s", s.Digest)
		}
		exp, err := s.ExpiresAt()
		if err != nil || !exp.Equal(time.Date(2026, 6, 11, 12, 10, 1, 0, time.UTC)) {
			t.Errorf("ExpiresAt() = %v, %v", exp, err)
		}
		if s.Context != nil || s.ActionBinding != nil {
			t.Errorf("context %s binding %s", s.Context, s.ActionBinding)
		}
	})
	t.Run("all fields and microseconds", func(t *testing.T) {
		s, err := Parse(readFile(t, "agt_v1_full.json"))
		if err != nil {
			t.Fatal(err)
		}
		if s.Fields.SubjectID == nil || *s.Fields.SubjectID != "user-456" || s.Fields.TargetResource == nil || *s.Fields.TargetResource != "prod-db" {
			t.Errorf("Fields = %+v", s.Fields)
		}
		if s.Digest != "sha256:fc226b1687131585b6749744424454b06925cdfaf9385c8c9fa4c710f75a10d7" {
			t.Errorf("Digest = %s", s.Digest)
		}
	})
	t.Run("context and action binding", func(t *testing.T) {
		s, err := Parse(readFile(t, "agt_v1_binding.json"))
		if err != nil {
			t.Fatal(err)
		}
		if string(s.Context) != `{"amount": 5000, "destination": {"account": "ACC-789"}}` {
			t.Errorf("Context = %s", s.Context)
		}
		if d, _ := canon.Digest(s.ActionBinding); d != s.Fields.ActionDigest {
			t.Errorf("binding digest %s, action_digest %s", d, s.Fields.ActionDigest)
		}
	})
}

func TestParseV1FromHelper(t *testing.T) {
	exp := time.Date(2026, 6, 11, 12, 10, 1, 500, time.UTC) // sub-microsecond: dropped as Python would
	body, fields := intaketest.V1Body(intaketest.V1{
		SubjectID: intaketest.Str("user-ü"), ExpiresAt: exp, IncludeBinding: true,
		Context: intaketest.Object{{Key: "note", Value: "pay €5000 😀"}},
	})
	s, err := Parse(body)
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if s.Digest != fields["input_digest"] || s.Fields.ActionDigest != fields["action_digest"] || s.Fields.ExpiresAt != "2026-06-11T12:10:01+00:00" {
		t.Errorf("Digest %s, fields %+v", s.Digest, s.Fields)
	}
	if !bytes.Contains(body, []byte(`"subject_id": "user-\u00fc"`)) || !bytes.Contains(body, []byte(`"target_resource": null`)) {
		t.Errorf("body not as Python writes it: %s", body)
	}
}

func TestIntaketestDumpsMatchesPython(t *testing.T) {
	// Python: json.dumps({"s": "a\"\\\b\f\n\r\t\x01\x7f é€😀", "n": [...], ...})
	want := `{"s": "a\"\\\b\f\n\r\t\u0001\u007f \u00e9\u20ac\ud83d\ude00", "n": [1, -7, 2.5, 100.0, 1e-05, 0.0001, 1e+16, 1.5e+300, -0.0, 123456.789], "t": true, "f": false, "z": null, "o": {"k": []}}`
	got := intaketest.Dumps(intaketest.Object{
		{Key: "s", Value: "a\"\\\b\f\n\r\t\x01\x7f é€😀"},
		{Key: "n", Value: []any{1, -7, 2.5, 100.0, 1e-05, 0.0001, 1e16, 1.5e300, negZero(), 123456.789}},
		{Key: "t", Value: true}, {Key: "f", Value: false}, {Key: "z", Value: nil},
		{Key: "o", Value: intaketest.Object{{Key: "k", Value: []any{}}}},
	})
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func negZero() float64 {
	z := 0.0
	return -z
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// edit rewrites a body's top-level members, keeping the others as received.
type edit func([]member) []member

func set(key, raw string) edit {
	return func(ms []member) []member {
		for i := range ms {
			if ms[i].key == key {
				ms[i].raw = json.RawMessage(raw)
				return ms
			}
		}
		return append(ms, member{key, json.RawMessage(raw)})
	}
}

func del(key string) edit {
	return func(ms []member) []member {
		out := ms[:0]
		for _, m := range ms {
			if m.key != key {
				out = append(out, m)
			}
		}
		return out
	}
}

func rewrite(t *testing.T, body []byte, edits ...edit) []byte {
	t.Helper()
	ms, err := decodeObject(body, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range edits {
		ms = e(ms)
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteString(", ")
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteString(": ")
		b.Write(m.raw)
	}
	b.WriteByte('}')
	return b.Bytes()
}

type refusal struct {
	name  string
	body  []byte
	field string
	want  string // in the message
}

func checkRefusals(t *testing.T, tests []refusal) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.body)
			if err == nil {
				t.Fatalf("accepted %s as %+v", tt.body, s)
			}
			var ae *approvebot.Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %T %v is not *approvebot.Error", err, err)
			}
			if ae.Code != approvebot.EInvalid || ae.Field != tt.field || !strings.Contains(ae.Message, tt.want) {
				t.Errorf("got {%s %s %q}, want field %q and message containing %q", ae.Code, ae.Field, ae.Message, tt.field, tt.want)
			}
			if !strings.HasPrefix(ae.Message, tt.field+": ") {
				t.Errorf("message %q does not open with the field", ae.Message)
			}
		})
	}
}

func TestParseRefusesLegacy(t *testing.T) {
	tut := []byte(tutorialBody)
	r := func(edits ...edit) []byte { return rewrite(t, tut, edits...) }
	checkRefusals(t, []refusal{
		{"missing type", r(del("type")), "type", "required"},
		{"other type", r(set("type", `"approval_response"`)), "type", `must be "approval_request"`},
		{"type not a string", r(set("type", `7`)), "type", "want a string"},
		{"missing action", r(del("action")), "action", "required"},
		{"action not a string", r(set("action", `{"type":"transfer"}`)), "action", "want a string"},
		{"missing requested_at", r(del("requested_at")), "requested_at", "required"},
		{"requested_at not a time", r(set("requested_at", `"yesterday"`)), "requested_at", "want an ISO 8601 time"},
		{"requested_at naive with comma", r(set("requested_at", `"2026-04-23T12:00:00,5"`)), "requested_at", "want an ISO 8601 time"},
		{"requested_at date only", r(set("requested_at", `"2026-04-23"`)), "requested_at", "want an ISO 8601 time"},
		{"requested_at a number", r(set("requested_at", `1776945600`)), "requested_at", "want a string"},
		{"approvers a string", r(set("approvers", `"treasury-ops"`)), "approvers", "want a list of strings"},
		{"approvers of numbers", r(set("approvers", `[1, 2]`)), "approvers", "want a list of strings"},
		{"approvers null", r(set("approvers", `null`)), "approvers", "want a list of strings"},
		{"approvers with a null", r(set("approvers", `["treasury-ops", null]`)), "approvers", "item 1 is null"},
		{"rule_name a number", r(set("rule_name", `5`)), "rule_name", "want a string"},
		{"policy_name null", r(set("policy_name", `null`)), "policy_name", "want a string"},
		{"agent_id a list", r(set("agent_id", `["a"]`)), "agent_id", "want a string"},
		{"context a string", r(set("context", `"amount 5000"`)), "context", "want an object"},
		{"unknown key", r(set("foo", `1`)), "foo", `unknown field "foo"`},
		{"schema 1.0 key without schema_version", r(set("input_digest", `"sha256:00"`)), "input_digest", `"schema_version": "1.0"`},
		{"duplicate key", []byte(`{"type":"approval_request","action":"read","action":"transfer","requested_at":"2026-04-23T12:00:00Z"}`), "body", `duplicate key "action"`},
		{"duplicate key in context", r(set("context", `{"amount": 5, "amount": 5000}`)), "context", `duplicate key "amount"`},
		{"duplicate key deep in context", r(set("context", `{"d": [{"a": 1, "a": 2}]}`)), "context.d[0]", `duplicate key "a"`},
		{"context too deep", r(set("context", strings.Repeat(`{"a":`, 40)+"1"+strings.Repeat("}", 40))), "context." + strings.TrimSuffix(strings.Repeat("a.", 32), "."), "nested more than"},
		{"array body", []byte(`[{"type":"approval_request"}]`), "body", "want a JSON object"},
		{"string body", []byte(`"approval_request"`), "body", "want a JSON object"},
		{"null body", []byte(`null`), "body", "want a JSON object"},
		{"empty body", []byte(``), "body", "ends too early"},
		{"truncated body", tut[:len(tut)-3], "requested_at", "JSON ends too early"},
		{"trailing garbage", append(append([]byte{}, tut...), " x"...), "body", "after the JSON object"},
		{"second object", append(append([]byte{}, tut...), "{}"...), "body", "after the JSON object"},
		{"not JSON", []byte(`{type: approval_request}`), "body", "invalid JSON"},
		{"invalid UTF-8", []byte("{\"type\":\"approval_request\",\"action\":\"\xff\",\"requested_at\":\"2026-04-23T12:00:00Z\"}"), "body", "UTF-8"},
	})
}

func TestParseRefusesV1(t *testing.T) {
	base := readFile(t, "agt_v1_nulls.json")
	r := func(edits ...edit) []byte { return rewrite(t, base, edits...) }
	tests := []refusal{
		{"unknown schema_version", r(set("schema_version", `"2.0"`)), "schema_version", `supported: "1.0"`},
		{"numeric schema_version", r(set("schema_version", `1.0`)), "schema_version", `supported: "1.0"`},
		{"legacy key in 1.0", r(set("approvers", `["treasury-ops"]`)), "approvers", `unknown field "approvers"`},
		{"unknown key", r(set("approved", `true`)), "approved", `unknown field "approved"`},
		{"request id empty", r(set("approval_request_id", `""`)), "approval_request_id", "want an id of 1 to 128 characters"},
		{"request id too long", r(set("approval_request_id", `"`+strings.Repeat("a", 129)+`"`)), "approval_request_id", "(129 characters)"},
		{"request id with a slash", r(set("approval_request_id", `"ar/../x"`)), "approval_request_id", "each a letter, digit or one of _ - . : ~"},
		{"request id of dots", r(set("approval_request_id", `".."`)), "approval_request_id", "and not only dots"},
		{"chain id a dot", r(set("approval_chain_id", `"."`)), "approval_chain_id", "and not only dots"},
		{"request id with a space", r(set("approval_request_id", `"ar 1"`)), "approval_request_id", "want an id"},
		{"request id with a percent", r(set("approval_request_id", `"ar%2F1"`)), "approval_request_id", "want an id"},
		{"request id not ASCII", r(set("approval_request_id", `"ar_\u00e9"`)), "approval_request_id", "want an id"},
		{"request id with a newline", r(set("approval_request_id", `"ar_1\n"`)), "approval_request_id", "want an id"},
		{"decision id with markup", r(set("policy_decision_id", `"<b>pd</b>"`)), "policy_decision_id", "want an id"},
		{"chain id with a slash", r(set("approval_chain_id", `"high/risk"`)), "approval_chain_id", "want an id"},
		{"action digest not sha256", r(set("action_digest", `"md5:9b43418da608a5a5f7cf62303220b4d1"`)), "action_digest", `want "sha256:" followed by exactly 64 lowercase hex digits (0-9, a-f); got "md5:9b43418da608a5a5f7cf62303220b4d1" (36 characters)`},
		{"action digest short", r(set("action_digest", `"sha256:abc123"`)), "action_digest", `exactly 64 lowercase hex digits (0-9, a-f); got "sha256:abc123" (13 characters)`},
		{"action digest upper case", r(set("action_digest", `"sha256:`+strings.Repeat("A", 64)+`"`)), "action_digest", "lowercase hex"},
		{"input digest malformed", r(set("input_digest", `"sha256:XYZ"`)), "input_digest", `want "sha256:" followed by exactly 64`},
		{"expires_at date only", r(set("expires_at", `"2026-06-11"`)), "expires_at", "want an ISO 8601 time"},
		{"expires_at garbage", r(set("expires_at", `"in ten minutes"`)), "expires_at", "want an ISO 8601 time"},
		{"requested_at garbage", r(set("requested_at", `"now"`)), "requested_at", "want an ISO 8601 time"},
		{"requested_at a number", r(set("requested_at", `1776945600`)), "requested_at", "want a string"},
		{"fail_closed_on_timeout a string", r(set("fail_closed_on_timeout", `"false"`)), "fail_closed_on_timeout", "want true or false"},
		{"fail_closed_on_timeout null", r(set("fail_closed_on_timeout", `null`)), "fail_closed_on_timeout", "want true or false"},
		{"fail_closed_on_timeout a number", r(set("fail_closed_on_timeout", `0`)), "fail_closed_on_timeout", "want true or false"},
		{"status allowed", r(set("status", `"allowed"`)), "status", `can only be "pending"`},
		{"status a number", r(set("status", `1`)), "status", `can only be "pending"`},
		{"unknown key beside the model fields", r(set("status", `"pending"`), set("cancelled_at", `"x"`)), "cancelled_at", `unknown field "cancelled_at"`},
		{"subject_id a number", r(set("subject_id", `456`)), "subject_id", "want a string or null"},
		{"target_resource a list", r(set("target_resource", `["prod-db"]`)), "target_resource", "want a string or null"},
		{"agent_id null", r(set("agent_id", `null`)), "agent_id", "want a string"},
		{"context a list", r(set("context", `[1]`)), "context", "want an object"},
		{"input digest of other fields", r(set("input_digest", `"sha256:`+strings.Repeat("0", 64)+`"`)), "input_digest", "sha256:8b7abc766eb71d29b4dfa5703549e6e3187ecbd087534c6ea94fab93db09c3b3"},
		{"field changed after hashing", r(set("agent_id", `"other-agent"`)), "input_digest", "does not match the request"},
		{"time re-formatted after hashing", r(set("expires_at", `"2026-06-11T12:10:01.000000+00:00"`)), "input_digest", "does not match"},
		{"null made empty after hashing", r(set("subject_id", `""`)), "input_digest", "does not match"},
	}
	for _, k := range []string{"type", "input_digest", "approval_request_id", "policy_decision_id", "action_digest", "agent_id",
		"subject_id", "operation", "target_resource", "policy_version", "approval_chain_id", "approval_chain_version", "expires_at"} {
		tests = append(tests, refusal{"missing " + k, r(del(k)), k, "required"})
		if k != "subject_id" && k != "target_resource" {
			tests = append(tests, refusal{k + " not a string", r(set(k, `true`)), k, "want a string"})
		}
	}
	checkRefusals(t, tests)
}

func TestParseRefusesActionBinding(t *testing.T) {
	base := readFile(t, "agt_v1_binding.json")
	ms, err := decodeObject(base, "")
	if err != nil {
		t.Fatal(err)
	}
	var binding string
	for _, m := range ms {
		if m.key == "action_binding" {
			binding = string(m.raw)
		}
	}
	b := func(old, new string) []byte {
		if !strings.Contains(binding, old) {
			t.Fatalf("binding lacks %q", old)
		}
		return rewrite(t, base, set("action_binding", strings.Replace(binding, old, new, 1)))
	}
	checkRefusals(t, []refusal{
		{"parameter changed", b(`"amount": 5000`, `"amount": 50000`), "action_binding", "does not match action_digest: request says sha256:9b43418d"},
		{"parameter as float", b(`"amount": 5000`, `"amount": 5000.5`), "action_binding", "does not match action_digest"},
		{"operation differs", b(`"operation": "tool.invoke"`, `"operation": "tool.read"`), "action_binding", `operation "tool.read" differs from the request's "tool.invoke"`},
		{"agent differs", b(`"agent_id": "payments-agent"`, `"agent_id": "other"`), "action_binding", "agent_id"},
		{"subject differs", b(`"subject_id": null`, `"subject_id": "user-1"`), "action_binding", "subject_id differs"},
		{"not an object", rewrite(t, base, set("action_binding", `"sha256:9b43"`)), "action_binding", "want a JSON object"},
		{"target missing", b(`"target": {"tool_name": "transfer_funds", "tool_schema_version": "2", "resource": "acct:ACC-789"}, `, ``), "action_binding", "target: want an object"},
		{"tool name a number", b(`"tool_name": "transfer_funds"`, `"tool_name": 7`), "action_binding", "target.tool_name: want a string"},
		{"unknown target key", b(`"resource": "acct:ACC-789"`, `"resource": "acct:ACC-789", "host": "x"`), "action_binding", `target: unknown field "host"`},
		{"unknown key", b(`"parameters":`, `"extra": 1, "parameters":`), "action_binding", `unknown field "extra"`},
		{"parameters a list", b(`{"amount": 5000, "currency": "EUR", "memo": "Zahlung f\u00fcr M\u00e4rz"}`, `[5000]`), "action_binding", "parameters: want an object"},
		{"duplicate parameter", b(`"currency": "EUR"`, `"currency": "EUR", "currency": "USD"`), "action_binding.parameters", `duplicate key "currency"`},
	})
}

// AGT types its ids as plain strings: its own tests send "pd_1", ADR-0030
// shows ULID-like ids, and its default is a prefix and uuid4().hex.
func TestParseV1AcceptsAGTIds(t *testing.T) {
	ids := []struct{ request, decision, chain string }{
		{"ar_1", "pd_1", "high-risk-tools"},
		{"ar_01HZX3K9Q8W2V7N5M4B6C1D0EF", "pd_01HZX3K9Q8W2V7N5M4B6C1D0EF", "chain.v2:payments~eu"},
		{intaketest.RandomID("ar"), intaketest.RandomID("pd"), "x"},
		{strings.Repeat("Z", 128), "a", strings.Repeat("-", 128)},
		{"urn:uuid:9b2e4f6a-8c0d-1e3f-5a7b-9c1d3e5f7a9b", "_", ".~:"},
	}
	for _, id := range ids {
		body, _ := intaketest.V1Body(intaketest.V1{ApprovalRequestID: id.request, PolicyDecisionID: id.decision, ApprovalChainID: id.chain})
		s, err := Parse(body)
		if err != nil {
			t.Errorf("%+v: %v", id, err)
			continue
		}
		if s.Fields.ApprovalRequestID != id.request || s.Fields.PolicyDecisionID != id.decision || s.Fields.ApprovalChainID != id.chain {
			t.Errorf("%+v: parsed as %+v", id, s.Fields)
		}
	}
}

// A naive datetime's isoformat() has no offset: it is read as UTC, noted,
// and the digest stays over the string as received.
func TestParseV1NaiveTimesAndModelFields(t *testing.T) {
	exp := time.Date(2026, 6, 11, 12, 10, 1, 0, time.UTC)
	for _, tt := range []struct {
		name string
		at   time.Time
		text string
	}{
		{"no fraction", exp, "2026-06-11T12:10:01"},
		{"microseconds", exp.Add(123456 * time.Microsecond), "2026-06-11T12:10:01.123456"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, fields := intaketest.V1Body(intaketest.V1{
				ApprovalRequestID: "ar_01HZX3K9Q8W2V7N5M4B6C1D0EF", PolicyDecisionID: "pd_1",
				ExpiresAt: tt.at, NaiveExpiry: true,
				Extra: intaketest.Object{
					{Key: "requested_at", Value: "2026-06-11T12:00:01.000001"},
					{Key: "fail_closed_on_timeout", Value: false},
					{Key: "status", Value: "pending"},
				},
			})
			if fields["expires_at"] != tt.text {
				t.Fatalf("test body has expires_at %v, want %s", fields["expires_at"], tt.text)
			}
			s, err := Parse(body)
			if err != nil {
				t.Fatal(err)
			}
			if s.Fields.ExpiresAt != tt.text || s.Fields.InputDigest != fields["input_digest"] || s.Digest != s.Fields.InputDigest {
				t.Errorf("fields %+v, digest %s; want the strings as received", s.Fields, s.Digest)
			}
			got, err := s.ExpiresAt()
			if err != nil || !got.Equal(tt.at) || got.Location() != time.UTC {
				t.Errorf("ExpiresAt() = %v, %v; want %v in UTC", got, err, tt.at)
			}
			if strings.Join(s.Naive, ",") != "expires_at,requested_at" {
				t.Errorf("Naive = %q", s.Naive)
			}
			f := s.Fields
			if f.RequestedAt != "2026-06-11T12:00:01.000001" || f.FailClosedOnTimeout == nil || *f.FailClosedOnTimeout || f.RequestStatus != "pending" {
				t.Errorf("model fields: %q %v %q", f.RequestedAt, f.FailClosedOnTimeout, f.RequestStatus)
			}
		})
	}
	// The model fields are outside input_digest: changing them keeps it.
	body, fields := intaketest.V1Body(intaketest.V1{Extra: intaketest.Object{{Key: "fail_closed_on_timeout", Value: true}}})
	s, err := Parse(body)
	if err != nil || s.Digest != fields["input_digest"] || s.Naive != nil || !*s.Fields.FailClosedOnTimeout {
		t.Errorf("aware body with fail_closed_on_timeout: %+v, %v", s, err)
	}
}

func TestParseBodyDigest(t *testing.T) {
	s, err := Parse([]byte(tutorialBody))
	if err != nil {
		t.Fatal(err)
	}
	// sha256sum of the tutorial body's bytes, computed apart from the code.
	sum := sha256.Sum256([]byte(tutorialBody))
	if want := "sha256:" + hex.EncodeToString(sum[:]); s.BodyDigest != want {
		t.Errorf("BodyDigest = %s, want %s", s.BodyDigest, want)
	}
	// A re-encoding is the same request (Digest) but not the same bytes.
	s2, err := Parse([]byte(strings.ReplaceAll(tutorialBody, "\n", "")))
	if err != nil || s2.Digest != s.Digest || s2.BodyDigest == s.BodyDigest {
		t.Errorf("re-encoded body: digest %s/%s, body digest %s/%s, %v", s2.Digest, s.Digest, s2.BodyDigest, s.BodyDigest, err)
	}
}

func TestParseTime(t *testing.T) {
	for _, tt := range []struct {
		in    string
		want  string // RFC 3339 in UTC, "" for refused
		naive bool
	}{
		{"2026-04-23T12:00:00.123456+00:00", "2026-04-23T12:00:00.123456Z", false},
		{"2026-04-23T12:00:00Z", "2026-04-23T12:00:00Z", false},
		{"2026-04-23T14:00:00+02:00", "2026-04-23T12:00:00Z", false},
		{"2026-04-23T12:00:00.123456", "2026-04-23T12:00:00.123456Z", true},
		{"2026-04-23T12:00:00", "2026-04-23T12:00:00Z", true},
		{"2026-04-23T12:00:00.5", "2026-04-23T12:00:00.5Z", true},
		{"2026-04-23T12:00:00,5", "", false},
		{"2026-04-23 12:00:00", "", false},
		{"2026-04-23T12:00", "", false},
		{"2026-04-23", "", false},
		{"2026-04-23T25:00:00", "", false},
		{"2026-04-23T12:00:00.123456+00:00 ", "", false},
		{"", "", false},
	} {
		got, naive, err := ParseTime(tt.in)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("ParseTime(%q) = %v, want an error", tt.in, got)
		case tt.want != "" && (err != nil || got.UTC().Format(time.RFC3339Nano) != tt.want || naive != tt.naive):
			t.Errorf("ParseTime(%q) = %v, naive %v, %v; want %s, naive %v", tt.in, got, naive, err, tt.want, tt.naive)
		}
	}
}
