package intake

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/intake/intaketest"
)

// decodeSeeds are bodies on both sides of every rule decodeObject enforces.
func decodeSeeds() []string {
	nest := func(n int, open, close, leaf string) string {
		return `{"d":` + strings.Repeat(open, n) + leaf + strings.Repeat(close, n) + `}`
	}
	seeds := []string{
		`{}`, ` { } `, "\t{\r\n}\n", `{"a":1}`, `{ "a" : 1 , "b" : [ 1 , 2 ] }`, "{\n\t\"a\"\r:\n1\t}",
		`{"a":{"b":{"c":[1,{"d":null}]}}}`, `{"a":[],"b":{},"c":[[]],"d":[{}]}`,
		`{"a":"x","b":true,"c":false,"d":null}`, `{"":1}`, `{"":1,"":2}`,
		// Numbers of every shape, and the shapes RFC 8259 refuses.
		`{"n":0}`, `{"n":-0}`, `{"n":-0.0}`, `{"n":1e5}`, `{"n":1E+2}`, `{"n":1e-7}`, `{"n":12.5e+10}`,
		`{"n":123456789012345678901234567890}`, `{"n":1e400}`, `{"n":-1.5E-300}`,
		`{"n":01}`, `{"n":-01}`, `{"n":00}`, `{"n":1.}`, `{"n":.5}`, `{"n":1e}`, `{"n":1e+}`, `{"n":-}`,
		`{"n":+1}`, `{"n":0x10}`, `{"n":1.5.2}`, `{"n":Infinity}`, `{"n":NaN}`, `{"n":1ee2}`, `{"n":-a}`,
		// Literals, and words that are not.
		`{"t":tru}`, `{"t":truex}`, `{"t":True}`, `{"t":nul}`, `{"t":falsey}`, `{"t":nulll}`,
		// Structure gone wrong.
		`{"a":1,}`, `{,"a":1}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":[1 2]}`, `{"a":1 "b":2}`, `{"a" 1}`,
		`{"a"::1}`, `{"a":}`, `{"a"}`, `{a:1}`, `{'a':1}`, `{"a":1]`, `{"a":[1}`, `{"a":{"b":1]}`,
		`{"a":{"b" 1}}`, `{"a"{}}`, `{1:2}`, `{"a":1`, `{"a":`, `{"a`, `{`, ``, ` `, `}`, `{}}`,
		// Not an object, or more than one.
		`[]`, `[{"a":1}]`, `"x"`, `1`, `null`, `true`, `{} {}`, `{}x`, `{} x`, `{}[]`, `{}1`, `{}"`, "{}\x00", "\ufeff{}",
		`{"a":1}{"a":1}`, `{"a":1} `, `{"a":1}` + "\n\n",
		// Strings and escapes.
		`{"s":"a\"b\\c\/d\be\ff\ng\rh\ti"}`, `{"s":"\u00e9\u4e2d\ud83d\ude00"}`, `{"s":"\x"}`, `{"s":"\u12"}`,
		`{"s":"\u12g4"}`, `{"s":"a` + "\n" + `b"}`, `{"s":"` + "\x1f" + `"}`, `{"s":"` + "\x7f" + `"}`, `{"s":"\'"}`,
		`{"s":"\ud800"}`, `{"s":"\udc00\ud800"}`, `{"s":"abc`, `{"s":"abc\`, `{"s":"abc\"}`,
		// Keys: escaped, unicode, and the same key spelled twice.
		`{"a":1,"\u0061":2}`, `{"\u0061":1,"a":2}`, `{"A":1,"\u0041":2}`, `{"a\/b":1,"a/b":2}`, `{"\\":1,"\u005c":2}`,
		`{"é":1,"\u00e9":2}`, `{"é":1,"\u00E9":2}`, `{"中文":1,"キー":2}`, `{"😀":1,"\ud83d\ude00":2}`,
		`{"\ud800":1,"\udfff":2}`, `{"\ud800":1,"\ufffd":2}`, `{"\ud800\ud800":1,"\ufffd\ufffd":2}`,
		`{"\ud800x":1}`, `{"\ud800\u0041":1,"\ufffdA":2}`, `{"\ud83d\\ude00":1}`, `{"\udc00\udc00":1}`,
		`{"\u0000":1,"\u0000":2}`, `{"\n":1,"\u000a":2}`, `{"a":1,"b":2,"a ":3}`, `{"a":{"a":1}}`,
		// Duplicates deep down, and siblings that may share a key.
		`{"a":{"b":1,"b":2}}`, `{"a":[{"b":1},{"b":2}]}`, `{"a":[{"b":1,"b":2}]}`, `{"a":{"b":{"c":{"d":1,"d":2}}}}`,
		`{"a":{"x":1},"b":{"x":1}}`, `{"a":{"b":{}},"b":1}`, `{"a":{"b":1},"a":{"b":1}}`,
		// Depth: at the limit, one past, and far past.
		nest(maxDepth-1, "[", "]", "1"), nest(maxDepth, "[", "]", "1"), nest(maxDepth-1, "[", "]", ""), nest(maxDepth, "[", "]", ""),
		nest(maxDepth+1, "[", "]", ""), nest(maxDepth-1, `{"k":`, "}", "1"), nest(maxDepth, `{"k":`, "}", "1"),
		nest(maxDepth-1, `{"k":`, "}", "{}"), nest(maxDepth, `{"k":`, "}", "{}"), nest(200, "[", "]", ""),
		nest(maxDepth-1, `[{"k":`, "}]", "1"), nest(10001, "[", "]", ""),
		// Invalid UTF-8, which Parse refuses first but another caller may not.
		"{\"\xff\":1,\"\xfe\":2}", "{\"\xff\":1,\"\\ufffd\":2}", "{\"a\xc3\":1}", "{\"s\":\"\xed\xa0\x80\"}", "{\"\xed\xa0\x80\":1,\"\xed\xa0\x81\":2}",
		"{\"s\":\"\xff\"}", "{\"k\xe2\x82\":1,\"k\\ufffd\":2}",
	}
	var many strings.Builder
	many.WriteString("{")
	for i := range 40 {
		if i > 0 {
			many.WriteString(",")
		}
		many.WriteString(`"k` + strings.Repeat("x", i) + `":` + strings.Repeat("[", i%5) + "0" + strings.Repeat("]", i%5))
	}
	// Objects past smallObject keys, at the top and nested.
	m := many.String()
	seeds = append(seeds, m+"}", m+`,"kxxx":1}`, m+`,"k":{"a":1,"a":1}}`, m+`,"\u006bx":1}`,
		`{"c":`+m+`}}`, `{"c":`+m+`,"kxxx":1}}`, `{"c":[`+m+`},`+m+`}]}`, `{"c":`+m+`,"y":`+m+`,"kx":2}}}`)
	return seeds
}

// FuzzDecodeObjectMatchesDecoder holds the single pass to encoding/json's
// tokens: the same members, key and value bytes, or the same refusal.
func FuzzDecodeObjectMatchesDecoder(f *testing.F) {
	for _, s := range decodeSeeds() {
		f.Add([]byte(s))
	}
	f.Add([]byte(tutorialBody))
	f.Add(benchLegacyBody())
	f.Add(benchV1Body())
	for _, name := range []string{"agt_v1_nulls.json", "agt_v1_full.json", "agt_v1_binding.json"} {
		f.Add(readFile(f, name))
	}
	body, _ := intaketest.LegacyBody(intaketest.Legacy{Context: intaketest.Object{{Key: "ü\n\"", Value: []any{1.5, nil, true}}}})
	f.Add(body)

	f.Fuzz(func(t *testing.T, text []byte) {
		want, wantErr := decodeObjectTokens(text, "context")
		fast, ok := scanObject(text)
		got, gotErr := decodeObject(text, "context")
		if ok != (wantErr == nil) {
			t.Fatalf("single pass accepts: %v, tokens refuse with %v, on %q", ok, wantErr, text)
		}
		if wantErr != nil {
			if gotErr == nil || gotErr.Error() != wantErr.Error() {
				t.Fatalf("refused with %v, want %v, on %q", gotErr, wantErr, text)
			}
			return
		}
		if gotErr != nil {
			t.Fatalf("refused %q: %v", text, gotErr)
		}
		for _, ms := range [][]member{fast, got} {
			if (ms == nil) != (want == nil) || len(ms) != len(want) {
				t.Fatalf("members %v, want %v, of %q", ms, want, text)
			}
			for i := range want {
				if ms[i].key != want[i].key || !bytes.Equal(ms[i].raw, want[i].raw) {
					t.Fatalf("member %d is %q: %q, want %q: %q, of %q", i, ms[i].key, ms[i].raw, want[i].key, want[i].raw, text)
				}
			}
		}
	})
}

// The patterns ValidID and validDigest spell out by hand.
var (
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9_.:~-]{1,` + strconv.Itoa(approvebot.MaxIDLength) + `}$`)
	digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// FuzzPlainReadersMatchEncodingJSON holds the shortcuts for plain strings,
// lists of them, ids and digests to what encoding/json and the patterns
// read.
func FuzzPlainReadersMatchEncodingJSON(f *testing.F) {
	for _, s := range []string{`""`, `"a"`, `"treasury-ops"`, `"é"`, "\"\xff\"", `"a\"b"`, `"a\nb"`, "\"a\nb\"", `"a" `, `"a"x"`, `"`,
		`[]`, `[ ]`, `["a"]`, `["a", "b"]`, ` ["a"]`, `["a",]`, `["a" "b"]`, `["a",null]`, `["a\\"]`, `["a"] `, `["a"`, `[""]`, `["a"]]`,
		"ar_01HZX3K9Q8W2V7N5M4B6C1D0EF", ".", "..", ".a", "a b", "chain.v2:eu~1", strings.Repeat("a", 128), strings.Repeat("a", 129), "é",
		"sha256:" + strings.Repeat("0f", 32), "sha256:" + strings.Repeat("0F", 32), "sha256:" + strings.Repeat("0", 63), "sha256:" + strings.Repeat("a", 64) + "\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if s, ok := plainString(raw); ok {
			var want string
			if err := json.Unmarshal(raw, &want); err != nil || s != want {
				t.Fatalf("plainString(%q) = %q, encoding/json reads %q (%v)", raw, s, want, err)
			}
		}
		if list, ok := plainStrings(raw); ok {
			var elems []json.RawMessage
			if err := json.Unmarshal(raw, &elems); err != nil || list == nil || len(list) != len(elems) {
				t.Fatalf("plainStrings(%q) = %q, encoding/json reads %q (%v)", raw, list, elems, err)
			}
			for i, e := range elems {
				if want, err := asString(e); err != nil || list[i] != want {
					t.Fatalf("plainStrings(%q)[%d] = %q, want %q (%v)", raw, i, list[i], want, err)
				}
			}
		}
		s := string(raw)
		if got, want := ValidID(s), idPattern.MatchString(s) && strings.Trim(s, ".") != ""; got != want {
			t.Fatalf("ValidID(%q) = %v, want %v", s, got, want)
		}
		if got, want := validDigest(s), digestPattern.MatchString(s); got != want {
			t.Fatalf("validDigest(%q) = %v, want %v", s, got, want)
		}
	})
}
