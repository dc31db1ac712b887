// Package confnode reads a YAML configuration node by node: it checks each
// mapping's keys against what is allowed, reads scalars (expanding ${VAR}),
// secrets, lists, durations, counts, sizes and URLs, and collects every
// problem with the line it stands on, so a file's owner sees them all at
// once. What a section's keys mean belongs to the section's owner.
package confnode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// MaxDuration bounds every duration read: a request nobody answers within a
// day is better denied and asked again than left hanging.
const MaxDuration = 24 * time.Hour

// Problem is one thing wrong in the file.
type Problem struct {
	Line int // 0: the file as a whole
	Msg  string
}

// Error lists the problems of one file, in line order.
type Error struct {
	File     string // "" when the contents were parsed without a file
	Problems []Problem
}

// MaxProblems bounds the report: past it, the file is more wrong than any
// list of problems can help with.
const MaxProblems = 50

func (e *Error) Error() string {
	var b strings.Builder
	for i, pr := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if i == MaxProblems {
			fmt.Fprintf(&b, "... and %d more problems", len(e.Problems)-i)
			break
		}
		if e.File != "" {
			b.WriteString(e.File + ": ")
		}
		if pr.Line > 0 {
			fmt.Fprintf(&b, "line %d: ", pr.Line)
		}
		b.WriteString(pr.Msg)
	}
	return b.String()
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Decode reads data as one YAML document and returns its root node. A file
// that is empty, or holds only null, is the problem empty says.
func Decode(data []byte, empty string) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Problems: []Problem{{Msg: empty}}}
		}
		return nil, &Error{Problems: []Problem{yamlProblem(err, data)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, &Error{Problems: []Problem{yamlProblem(err, data)}}
		}
		return nil, &Error{Problems: []Problem{{Line: extra.Line, Msg: `a second YAML document ("---") follows the first: keep the whole configuration in one document`}}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &Error{Problems: []Problem{{Line: doc.Line, Msg: "the configuration is not a YAML document"}}}
	}
	root := doc.Content[0]
	if IsNull(root) {
		return nil, &Error{Problems: []Problem{{Line: root.Line, Msg: empty}}}
	}
	return root, nil
}

// yamlProblem turns a syntax error into a problem. ${VAR} inside a flow
// mapping or list ({...} or [...]) is a syntax error, because braces end a
// plain value there; the hint says how to write it.
func yamlProblem(err error, data []byte) Problem {
	msg := err.Error()
	pr := Problem{Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		pr.Line, _ = strconv.Atoi(m[1])
		pr.Msg = "invalid YAML: " + m[2]
	}
	lines := bytes.Split(data, []byte("\n"))
	for _, l := range []int{pr.Line - 1, pr.Line, pr.Line - 2} { // the parser may blame a neighbour
		if l >= 0 && l < len(lines) && bytes.Contains(lines[l], []byte("${")) {
			pr.Msg += ` (inside {...} or [...], quote a value that uses ${VAR}: token: "${TOKEN}")`
			break
		}
	}
	return pr
}

// Reader walks a document and collects problems. It reads every value from
// the node tree rather than decoding into structs, so that each problem can
// name its key and line and ${VAR} is expanded per value.
type Reader struct {
	getenv func(string) (string, bool)
	// readFile reads secret files (*_file keys); nil refuses them.
	readFile func(string) ([]byte, error)
	problems []Problem
}

// NewReader reads values expanding ${VAR} through getenv (nil: every
// variable unset) and secret files through readFile (nil: refused).
func NewReader(getenv func(string) (string, bool), readFile func(string) ([]byte, error)) *Reader {
	if getenv == nil {
		getenv = func(string) (string, bool) { return "", false }
	}
	return &Reader{getenv: getenv, readFile: readFile}
}

// Add records a problem at line.
func (p *Reader) Add(line int, format string, args ...any) {
	p.problems = append(p.problems, Problem{Line: line, Msg: fmt.Sprintf(format, args...)})
}

// Failed reports whether any problem was recorded.
func (p *Reader) Failed() bool { return len(p.problems) > 0 }

// Err is every problem recorded, in line order.
func (p *Reader) Err() error {
	sort.SliceStable(p.problems, func(i, j int) bool { return p.problems[i].Line < p.problems[j].Line })
	return &Error{Problems: p.problems}
}

// knownTags are the YAML core tags; anything else (custom "!tags",
// "!!binary") would be read as something it does not say it is.
var knownTags = map[string]bool{
	"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true,
	"!!map": true, "!!seq": true, "!!timestamp": true,
}

// CheckNodes refuses aliases, which would let a small file expand into a
// huge one and make lines point at the anchor instead of the use, and
// unknown tags.
func (p *Reader) CheckNodes(n *yaml.Node) {
	if n.Kind == yaml.AliasNode {
		p.Add(n.Line, "YAML aliases (*%s) are not supported: write the value out", n.Value)
		return
	}
	if tag := n.ShortTag(); !knownTags[tag] {
		p.Add(n.Line, "YAML tag %q is not supported", tag)
	}
	for _, c := range n.Content {
		p.CheckNodes(c)
	}
}

// IsNull reports whether n is absent or YAML null.
func IsNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// Describe names n's kind, for messages.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

// Join is the key path of key inside base.
func Join(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

// Object is a YAML mapping whose keys have been checked against a schema.
type Object struct {
	Node *yaml.Node // nil when the key is absent
	Path string
	Val  map[string]*yaml.Node
}

// Line is where the mapping stands (1 when it is absent).
func (o *Object) Line() int {
	if o == nil || o.Node == nil {
		return 1
	}
	return o.Node.Line
}

// Has reports whether the mapping holds key.
func (o *Object) Has(key string) bool {
	if o == nil {
		return false
	}
	_, ok := o.Val[key]
	return ok
}

// Object checks that n is a mapping holding only the allowed keys. A missing
// or null n reads as an empty mapping. It returns nil when n is not a
// mapping; every reader below treats a nil object as empty.
func (p *Reader) Object(n *yaml.Node, at string, allowed ...string) *Object {
	o := &Object{Path: at, Val: map[string]*yaml.Node{}}
	if IsNull(n) {
		o.Node = n
		return o
	}
	o.Node = n
	if n.Kind != yaml.MappingNode {
		what := at
		if what == "" {
			what = "the configuration"
		}
		p.Add(n.Line, "%s must be a mapping with the keys %s, not %s", what, strings.Join(allowed, ", "), Describe(n))
		return nil
	}
	for _, e := range p.Entries(n, at) {
		if !slices.Contains(allowed, e.Key.Value) {
			where := "at the top level"
			if at != "" {
				where = "in " + at
			}
			p.Add(e.Key.Line, "unknown key %q %s (want %s)", e.Key.Value, where, strings.Join(allowed, ", "))
			continue
		}
		o.Val[e.Key.Value] = e.Val
	}
	return o
}

// Entry is one key and its value in a mapping.
type Entry struct {
	Key, Val *yaml.Node
}

// Entries lists a mapping's pairs, refusing repeated and non-scalar keys.
func (p *Reader) Entries(n *yaml.Node, at string) []Entry {
	where := "at the top level"
	if at != "" {
		where = "in " + at
	}
	var out []Entry
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || IsNull(k) {
			p.Add(k.Line, "a key %s must be a plain name, not %s", where, Describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.Add(k.Line, "key %q %s is repeated (first at line %d)", k.Value, where, first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, Entry{k, v})
	}
	return out
}

// Need says what an empty value means for a key.
type Need int

const (
	// Required: the value must be there and not be empty.
	Required Need = iota
	// Optional: absent or empty means the default; a ${VAR} used in it
	// must still be set (perhaps to "").
	Optional
	// DefaultIfUnset: like Optional, and a value that is exactly ${VAR}
	// with VAR unset also means the default, so one file serves both
	// production and a test set-up that overrides the URL.
	DefaultIfUnset
)

// Value reads scalar n, expanding ${VAR}. ok is false when a problem was
// reported. Errors never quote the value: it may be a secret.
func (p *Reader) Value(n *yaml.Node, at string, nd Need) (s string, ok bool) {
	if n.Kind != yaml.ScalarNode {
		p.Add(n.Line, "%s must be a single value, not %s", at, Describe(n))
		return "", false
	}
	if IsNull(n) {
		if nd == Required {
			p.Add(n.Line, "%s is empty: give it a value", at)
			return "", false
		}
		return "", true
	}
	s, exp, err := Expand(n.Value, p.getenv)
	if err != nil {
		p.Add(n.Line, "%s: %v", at, err)
		return "", false
	}
	if len(exp.Unset) > 0 {
		if nd == DefaultIfUnset && exp.Whole != "" {
			return "", true
		}
		p.Add(n.Line, "%s: environment variable %s is not set", at, strings.Join(exp.Unset, ", "))
		return "", false
	}
	if s == "" && nd == Required {
		if len(exp.Empty) > 0 {
			p.Add(n.Line, "%s: environment variable %s is set but empty", at, strings.Join(exp.Empty, ", "))
		} else {
			p.Add(n.Line, "%s is empty: give it a value", at)
		}
		return "", false
	}
	return s, true
}

// Str reads o's key. An absent key is "" (or a problem when Required).
func (p *Reader) Str(o *Object, key string, nd Need) string {
	if o == nil {
		return ""
	}
	n, ok := o.Val[key]
	if !ok {
		if nd == Required {
			p.Add(o.Line(), "%s is missing", Join(o.Path, key))
		}
		return ""
	}
	s, _ := p.Value(n, Join(o.Path, key), nd)
	return s
}

// Secret reads a credential: required unless minLen is 0 (then optional),
// without surrounding space or control characters, at least minLen long.
// It comes from the key itself (usually ${VAR}) or, with key_file, from a
// file (a Kubernetes secret mounted as files, a systemd credential): the
// file's content is the secret, less one trailing newline. Every secret key
// has its _file twin; the two exclude each other.
func (p *Reader) Secret(o *Object, key string, minLen int) string {
	nd := Required
	if minLen == 0 {
		nd = Optional
	}
	var s string
	if o.Has(key + "_file") {
		if o.Has(key) {
			p.Add(o.Val[key].Line, "%s and %s_file are both set: give the secret one way", Join(o.Path, key), Join(o.Path, key))
			return ""
		}
		s = p.SecretFile(o, key+"_file")
		key += "_file"
	} else {
		s = p.Str(o, key, nd)
	}
	if s == "" {
		return ""
	}
	at, line := Join(o.Path, key), o.Val[key].Line
	if strings.TrimSpace(s) != s || strings.ContainsFunc(s, unicode.IsControl) {
		p.Add(line, "%s contains spaces or control characters at its ends or inside (a trailing newline from a secret file?)", at)
		return ""
	}
	if minLen > 1 && len(s) < minLen {
		p.Add(line, "%s: weak token: %d characters, want at least %d (e.g. openssl rand -hex 32)", at, len(s), minLen)
		return ""
	}
	return s
}

// SecretFile reads the secret in the file o's key names. Only Load reads
// files; Parse, which must stay free of I/O, refuses the key.
func (p *Reader) SecretFile(o *Object, key string) string {
	path := p.Str(o, key, Required)
	if path == "" {
		return ""
	}
	at, line := Join(o.Path, key), o.Val[key].Line
	if p.readFile == nil {
		p.Add(line, "%s: secret files are read only when the configuration is loaded from a file", at)
		return ""
	}
	data, err := p.readFile(path)
	if err != nil {
		p.Add(line, "%s: cannot read the secret: %v", at, err)
		return ""
	}
	s := strings.TrimSuffix(string(data), "\n")
	s = strings.TrimSuffix(s, "\r")
	if s == "" {
		p.Add(line, "%s: %s is empty", at, path)
	}
	return s
}

// LineOf is the line of key, or of its _file twin.
func (o *Object) LineOf(key string) int {
	if n, ok := o.Val[key]; ok {
		return n.Line
	}
	if n, ok := o.Val[key+"_file"]; ok {
		return n.Line
	}
	return o.Line()
}

// List reads o's key as a list of non-empty, distinct values.
func (p *Reader) List(o *Object, key string) []string {
	out, _ := p.ListNodes(o, key)
	return out
}

// ListNodes is List that also returns each value's node, for messages.
func (p *Reader) ListNodes(o *Object, key string) ([]string, []*yaml.Node) {
	if o == nil {
		return nil, nil
	}
	n, ok := o.Val[key]
	if !ok || IsNull(n) {
		return nil, nil
	}
	at := Join(o.Path, key)
	if n.Kind != yaml.SequenceNode {
		p.Add(n.Line, "%s must be a list, e.g. [a, b], not %s", at, Describe(n))
		return nil, nil
	}
	var out []string
	var nodes []*yaml.Node
	seen := map[string]int{}
	for i, item := range n.Content {
		s, ok := p.Value(item, fmt.Sprintf("%s[%d]", at, i), Required)
		if !ok {
			continue
		}
		if first, dup := seen[s]; dup {
			p.Add(item.Line, "%s lists %q twice (first at line %d)", at, s, first)
			continue
		}
		seen[s] = item.Line
		out = append(out, s)
		nodes = append(nodes, item)
	}
	return out, nodes
}

// Bool reads true or false; absent is false.
func (p *Reader) Bool(o *Object, key string) bool {
	s := p.Str(o, key, Optional)
	switch s {
	case "", "false", "False", "FALSE":
		return false
	case "true", "True", "TRUE":
		return true
	}
	p.Add(o.Val[key].Line, "%s must be true or false", Join(o.Path, key))
	return false
}

// WholeNumber reports whether s is an optionally signed run of digits.
func WholeNumber(s string) bool { return digits.MatchString(s) }

var digits = regexp.MustCompile(`^[+-]?[0-9]+$`)

// Duration reads a Go duration. Zero is allowed only when allowZero; absent
// or empty gives def.
func (p *Reader) Duration(o *Object, key string, def time.Duration, allowZero bool) time.Duration {
	s := p.Str(o, key, Optional)
	if s == "" {
		return def
	}
	at, line := Join(o.Path, key), o.Val[key].Line
	if digits.MatchString(s) {
		p.Add(line, `%s: %s has no unit: write a duration with units like "90s" or "5m"`, at, s)
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.Add(line, `%s: %q is not a duration: use units like "90s", "5m" or "1h30m"`, at, s)
		return def
	}
	switch {
	case d < 0 || (d == 0 && !allowZero):
		p.Add(line, "%s must be more than 0, not %s", at, s)
	case d > MaxDuration:
		p.Add(line, "%s may be at most 24h, not %s", at, s)
	}
	return d
}

// Count reads a whole number from 1 to max. Absent or empty gives def.
func (p *Reader) Count(o *Object, key string, def, max int) int {
	s := p.Str(o, key, Optional)
	if s == "" {
		return def
	}
	at, line := Join(o.Path, key), o.Val[key].Line
	if !digits.MatchString(s) {
		p.Add(line, "%s must be a whole number, not %q", at, s)
		return def
	}
	n, err := strconv.Atoi(s)
	switch {
	case err != nil || n > max:
		p.Add(line, "%s: %s is too large (at most %d)", at, s, max)
		return def
	case n < 1:
		p.Add(line, "%s must be at least 1, not %s", at, s)
		return def
	}
	return n
}

var sizeUnits = map[string]int64{
	"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
}

var sizePattern = regexp.MustCompile(`^([0-9]+)\s*([A-Za-z]+)$`)

// Size reads a byte count with a unit ("64MiB", "1GB"). Absent or empty
// gives 0 (no limit); otherwise it must be at least min.
func (p *Reader) Size(o *Object, key string, min int64) int64 {
	s := p.Str(o, key, Optional)
	if s == "" {
		return 0
	}
	at, line := Join(o.Path, key), o.Val[key].Line
	m := sizePattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		if digits.MatchString(s) {
			p.Add(line, `%s: %s has no unit: write a size like "64MiB" or "1GiB"`, at, s)
		} else {
			p.Add(line, `%s: %q is not a size: write a number and a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. "64MiB"`, at, s)
		}
		return 0
	}
	unit, ok := sizeUnits[m[2]]
	if !ok {
		p.Add(line, `%s: unknown unit %q in %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`, at, m[2], s)
		return 0
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > math.MaxInt64/unit {
		p.Add(line, "%s: %s is too large", at, s)
		return 0
	}
	if n*unit < min {
		p.Add(line, "%s must be at least 1MiB, not %s", at, s)
		return 0
	}
	return n * unit
}

// HTTPURL reads an optional http(s) URL.
func (p *Reader) HTTPURL(o *Object, key, def string) string {
	s := p.Str(o, key, DefaultIfUnset)
	if s == "" {
		return def
	}
	at, line := Join(o.Path, key), o.Val[key].Line
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.Add(line, "%s must be an http:// or https:// URL", at)
		return def
	}
	if u.User != nil {
		p.Add(line, "%s must not carry a user or password", at)
		return def
	}
	return s
}

// IsEmail reports whether s looks like an email address or UPN.
func IsEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return at > 0 && at < len(s)-1 && !strings.ContainsFunc(s, unicode.IsSpace)
}
