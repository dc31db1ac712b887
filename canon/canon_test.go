package canon

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

// The expected digests below were computed outside Go: the first two with
// Python's json.dumps(sort_keys=True, separators=(",", ":"),
// ensure_ascii=False) (equal to JCS for ASCII strings and no numbers), the
// third with AGT's own canonicalizer (agentmesh approval_protocol.digest).
func TestDigestKnownVectors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "schema 1.0 presented fields, AGT spacing",
			in:   `{"approval_request_id": "ar_0123456789abcdef0123456789abcdef", "policy_decision_id": "pd_fedcba9876543210fedcba9876543210", "action_digest": "sha256:abababababababababababababababababababababababababababababababab", "agent_id": "agent-123", "subject_id": null, "operation": "tool.invoke", "target_resource": "prod-db", "policy_version": "2026.06.11", "approval_chain_id": "high-risk-tools", "approval_chain_version": "3", "expires_at": "2026-06-11T12:10:01.000000+00:00"}`,
			want: "sha256:6deb204c1a13face6ba6bbf80e924dda6c6adaa2786271d1767000cd6639d93f",
		},
		{
			name: "legacy tutorial body",
			in: `{
  "type": "approval_request",
  "rule_name": "approve-large-transfer",
  "policy_name": "financial-approvals",
  "agent_id": "payments-agent",
  "action": "transfer",
  "approvers": ["treasury-ops", "compliance"],
  "requested_at": "2026-04-23T12:00:00.123456+00:00"
}`,
			want: "sha256:ee268a92d8c1804ff10eaae986f4476628a85210b2c9315f9297885314956836",
		},
		{
			name: "non-ASCII keys, escapes and numbers as AGT canonicalizes them",
			in:   `{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew", "1": "One", "\ud83d\ude00": "Emoji", "\u0080": "Control", "\u00f6": "o", "ctl": "\u000f\u007f\u2028", "q": "\"\\/", "n": [1, 2.5, -0.0, 100.0, {"b": null, "a": true}]}`,
			want: "sha256:d1cf688b2ddc77c3aff46a2930338084c04939ee77b7f18ed19e841121121932",
		},
		{name: "empty object", in: ` { } `, want: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Digest([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Digest = %s, want %s", got, tt.want)
			}
		})
	}
}

// RFC 8785 section 3.2.2's example: whitespace, number forms and escapes.
func TestCanonicalizeRFC8785Example(t *testing.T) {
	in := `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`
	want := `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`
	got, err := Canonicalize([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// RFC 8785 section 3.2.3: keys sort by UTF-16 code units, so the emoji (a
// surrogate pair, 0xD83D...) comes before U+FB33 although its code point is
// larger.
func TestCanonicalizeRFC8785SortOrder(t *testing.T) {
	in := `{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`
	want := "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"
	got, err := Canonicalize([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// RFC 8785 appendix B: IEEE-754 bit patterns and their canonical text.
func TestCanonicalizeRFC8785Numbers(t *testing.T) {
	tests := []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	}
	for _, tt := range tests {
		in := "[" + strconv.FormatFloat(math.Float64frombits(tt.bits), 'g', -1, 64) + "]"
		got, err := Canonicalize([]byte(in))
		if err != nil {
			t.Errorf("%016x: %v", tt.bits, err)
			continue
		}
		if string(got) != "["+tt.want+"]" {
			t.Errorf("%016x: got %s, want [%s]", tt.bits, got, tt.want)
		}
	}
}

func TestDigestOfMatchesDigest(t *testing.T) {
	v := map[string]any{"b": "<tag> & co", "a": []any{1, "x", nil}}
	got, err := DigestOf(v)
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json escapes <, > and &; canonical form must not.
	want, err := Digest([]byte(`{"a":[1,"x",null],"b":"<tag> & co"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("DigestOf = %s, Digest = %s", got, want)
	}
	if _, err := DigestOf(math.NaN()); err == nil {
		t.Error("DigestOf(NaN) succeeded")
	}
}

func TestDigestRefuses(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"truncated key", `{"a":1,"b`, "not a single valid JSON value"},
		{"split number", `[1 2]`, "not a single valid JSON value"},
		{"hex number", `[0x10]`, "not a single valid JSON value"},
		{"trailing data", `{} {}`, "not a single valid JSON value"},
		{"duplicate key", `{"a":1,"a":2}`, "duplicate key"},
		{"duplicate key by escape", `{"a":1,"\u0061":2}`, "duplicate key"},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "UTF-8"},
		{"lone high surrogate", `["\ud800"]`, "unpaired surrogate"},
		{"high surrogate then letter", `["\ud800\u0041"]`, "unpaired surrogate"},
		{"lone low surrogate", `["\udc00\ud800"]`, "unpaired surrogate"},
		{"number too large", `[1e400]`, "canonicalize"},
		{"empty", ``, "not a single valid JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Digest([]byte(tt.in))
			if err == nil {
				t.Fatalf("Digest(%q) = %s, want error", tt.in, d)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func FuzzDigest(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `["\ud83d\ude00",1e30,-0.0]`, `{"b":{"c":[null,true]}}`, `"x"`, `{"\u00f6":"\\"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Canonicalize(in)
		if err != nil {
			return
		}
		// The canonical form is a fixed point.
		again, err := Canonicalize(c)
		if err != nil {
			t.Fatalf("canonical form %q refused: %v", c, err)
		}
		if string(again) != string(c) {
			t.Fatalf("not idempotent: %q -> %q", c, again)
		}
	})
}
