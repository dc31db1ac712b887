package canon

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// Canonicalize must write exactly what the JCS library writes, on every
// input its checks let through, and refuse the rest with the checks' own
// error; the library and the separate checks stay the reference.
func checkSameAsLibrary(t *testing.T, in []byte) {
	t.Helper()
	got, gerr := Canonicalize(in)
	var refused error
	switch {
	case !json.Valid(in):
		refused = errors.New("not a single valid JSON value")
	case !utf8.Valid(in):
		refused = errors.New("not valid UTF-8")
	default:
		refused = checkEscapes(in)
	}
	if refused != nil {
		if gerr == nil || gerr.Error() != refused.Error() {
			t.Fatalf("%q: error %v, want %v", in, gerr, refused)
		}
		return
	}
	ref := in
	if t := bytes.TrimSpace(in); len(t) > 0 && t[0] != '{' && t[0] != '[' && t[0] != '"' {
		// The library hands a top-level number or literal to ParseFloat
		// with its surrounding whitespace and fails; RFC 8785 ignores
		// that whitespace, and so does transform.
		ref = t
	}
	want, werr := jcs.Transform(ref)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: library error %v, Canonicalize error %v", in, werr, gerr)
	}
	if gerr != nil && (errors.Is(gerr, errInvalid) || strings.Contains(gerr.Error(), "refused by the parser")) {
		t.Fatalf("%q: parser refused what the checks accept: %v", in, gerr)
	}
	if werr == nil && string(got) != string(want) {
		t.Fatalf("%q:\nCanonicalize %s\nlibrary      %s", in, got, want)
	}
	// compareKeys orders every pair of strings in the text as their UTF-16
	// code units do.
	var strs []string
	for dec := json.NewDecoder(bytes.NewReader(in)); ; {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if s, ok := tok.(string); ok {
			strs = append(strs, s)
		}
	}
	strs = strs[:min(len(strs), 16)] // the pairs grow as the square
	for _, a := range strs {
		for _, b := range strs {
			if got, want := sign(compareKeys([]byte(a), []byte(b))), sign(compareUTF16(a, b)); got != want {
				t.Fatalf("compareKeys(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func sign(n int) int { return min(max(n, -1), 1) }

// compareUTF16 is RFC 8785's key order written plainly: by UTF-16 code
// units. compareKeys is the fast form.
func compareUTF16(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

// seeds are texts the transform's shortcuts must get right: keys already
// in order, keys equal up to a prefix, non-ASCII and surrogate-pair keys in
// and out of order, escaped keys (whose canonical spelling differs from the
// input's), duplicates found in order and out of it, and deep nesting.
var seeds = []string{
	`{"b":2,"a":1,"c":{"z":[],"y":{}}}`,
	` [ 1 , -0 , 0.0 , -0.0 , 1e2 , 1E-7 , 123456789012345 , 1234567890123456 , 12345678901234567890 , 4.5e300 , 5e-324 ] `,
	`{"\u20ac":1,"\ud83d\ude00":2,"\ufb33":3,"a":4,"\u0080":5,"":6}`,
	`"\u0000\u001f\b\t\n\f\r\"\\\/\u007f\u2028 é 😀 <&>"`,
	`{"a":1,"\u0061":2}`,
	`[1e400]`, `[-1e400]`, `[true,false,null]`, `{}`, `[]`, `""`, `0`, `-1`, `-0`, `1.0`, `100`, `1e21`, `1e20`,
	`{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001]}`,
	`{"nested":{"b":[{"d":1,"c":2}],"a":"x"}}`,
	`{"a":1,"b":2,"c":{"d":[1,2],"e":{"f":null}},"g":"h"}`,
	`{"ab":1,"a":2,"abc":3,"":4,"a\u0000":5}`,
	`{"a":1,"ab":2,"abc":3}`,
	`{"é":1,"e":2,"ê":3,"\u00e9x":4}`,
	`{"\ufb33":1,"\ud83d\ude00":2,"\ue000":3,"\ud7ff":4,"\uffff":5,"\udbff\udfff":6}`,
	`{"😀":1,"דּ":2}`, `{"דּ":1,"😀":2}`, `{"\ud83d\ude00":1,"😁":2,"😀x":3}`,
	`{"\n":1,"\r":2,"\"":3,"\\":4,"\/":5,"\u001f":6,"\u0041":7,"/":8}`,
	`{"a\"b":{"a\u0022b":1},"a\\b":2}`,
	`{"\u00e9":1,"é":2}`, `{"\"":1,"\u0022":2}`, `{"a":1,"b":2,"a":3}`, `{"b":1,"b":2,"a":1,"a":2}`,
	`{"z":{"x":1,"x":2},"a":1,"a":2}`, `{"a":1,"a":[1e400]}`,
	`"\ud800\udc00\udc00"`, `["\ud83d\ude00", "\uDBFF"]`, `["\uD83D\uDE00\u00E9\u00C9"]`,
	"{\"a\":\"\xff\"}", "\"\xed\xa0\x80\"", "[\"\x01\"]", `[01]`, `[1.]`, `[.5]`, `[-]`, `[1e]`, `[1e+]`, `[tru]`, `[nul]`, `[falsey]`, `{"a" 1}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{} {}`, ` `, `"\x"`, `"\u12"`, `"\u12G4"`,
	strings.Repeat("[", 64) + `{"b":1,"a":[{"d":2,"c":3}]}` + strings.Repeat("]", 64),
	strings.Repeat(`{"a":`, 64) + `1` + strings.Repeat("}", 64),
}

func TestTransformMatchesLibrary(t *testing.T) {
	for _, in := range seeds {
		checkSameAsLibrary(t, []byte(in))
	}
}

// Errors found after the checks (duplicates, numbers out of range) and
// the nesting limit are reported exactly as before the one-pass parser.
func TestCanonicalizeErrorsUnchanged(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"b":1,"a":2,"b":3}`, `canonicalize: duplicate key "b"`},
		{`{"a":1,"a":2,"c":{"x":1,"x":2}}`, `canonicalize: duplicate key "x"`},
		{`{"z":{"x":1,"x":2},"a":1,"a":2}`, `canonicalize: duplicate key "x"`},
		{`{"b":1,"b":2,"a":1,"a":2}`, `canonicalize: duplicate key "a"`},
		{`[1e400,{"a":1,"a":2}]`, `canonicalize: number 1e400: strconv.ParseFloat: parsing "1e400": value out of range`},
		{`{"a":1,"a":[1e400]}`, `canonicalize: number 1e400: strconv.ParseFloat: parsing "1e400": value out of range`},
		{"{\"a\":1,\"a\":2,\"q\":\"\xff\"}", `not valid UTF-8`},
		{`{"a":1,"a":2,"q":"\ud800"}`, `unpaired surrogate \ud800 at byte 18`},
		{`[-1e400]`, `canonicalize: number -1e400: strconv.ParseFloat: parsing "-1e400": value out of range`},
		{`{"é":1,"\u00e9":2}`, `canonicalize: duplicate key "é"`},
		{`{"\"":1,"\u0022":2}`, `canonicalize: duplicate key "\""`},
		{`{"\n":1,"\u000a":2}`, `canonicalize: duplicate key "\n"`},
		{strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), `not a single valid JSON value`},
		{`{"a":1e400,"a":1}`, `canonicalize: number 1e400: strconv.ParseFloat: parsing "1e400": value out of range`},
		{`"\ud800\udc00\udc00"`, `unpaired surrogate \udc00 at byte 13`},
		{`["\ud83d\ude00", "\uDBFF"]`, `unpaired surrogate \udbff at byte 18`},
	}
	for _, tt := range tests {
		_, err := Canonicalize([]byte(tt.in))
		if err == nil || err.Error() != tt.want {
			t.Errorf("Canonicalize(%.40q) error %v, want %s", tt.in, err, tt.want)
		}
	}
	deep := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	if got, err := Canonicalize([]byte(deep)); err != nil || string(got) != deep {
		t.Errorf("nesting %d deep: %.20s..., %v", maxDepth, got, err)
	}
}

func FuzzTransformMatchesLibrary(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkSameAsLibrary(t, in)
	})
}

// go test -run=^$ -bench=Canonicalize ./canon
func BenchmarkCanonicalize(b *testing.B) {
	inputs := []struct{ name, in string }{
		{"legacy", `{"schema":"legacy","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","fields":{"type":"approval_request","rule_name":"approve-large-transfer","policy_name":"financial-approvals","agent_id":"payments-agent","action":"transfer","approvers":["treasury-ops","compliance"],"requested_at":"2026-01-02T03:04:05.123456+00:00"},"n":[1,2.5,300]}`},
		// An approval_requested audit detail as the engine marshals it: a
		// map (keys sorted) holding structs (keys in declaration order).
		{"requested", `{"body_digest":"sha256:3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b","chain":{"stages":[{"groups":[{"name":"treasury-ops","slack":{"channels":["C0123456789"],"users":["U0123456789"]}}],"quorum":{"mode":"any"}}]},"deadline":"2026-06-11T12:10:01Z","digest":"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","fields":{"type":"approval_request","rule_name":"approve-large-transfer","policy_name":"financial-approvals","agent_id":"payments-agent","action":"transfer","approvers":["treasury-ops","compliance"],"requested_at":"2026-06-11T12:00:01.123456+00:00","expires_at":"2026-06-11T12:10:01.000000+00:00"},"schema":"legacy"}`},
	}
	for _, tt := range inputs {
		in := []byte(tt.in)
		b.Run(tt.name+"/library", func(b *testing.B) {
			for b.Loop() {
				if _, err := jcs.Transform(in); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tt.name+"/Canonicalize", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Canonicalize(in); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tt.name+"/Digest", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Digest(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
