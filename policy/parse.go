package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/approvebot/approvebot"
)

// Defaults the file may leave out.
const (
	DefaultStorePath         = "approvebot.db"
	DefaultSlackAPIURL       = "https://slack.com/api/"
	DefaultChannelInterval   = time.Second
	DefaultOpenIDMetadataURL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
	DefaultIssuer            = "approvebot"
	DefaultSigningKeyName    = "approvebot-signing.key"

	// MaxTimeout bounds every timeout in the file: a request nobody answers
	// within a day is better denied and asked again than left hanging.
	MaxTimeout = 24 * time.Hour
	// MinSecretLength is the shortest caller or admin token accepted.
	MinSecretLength = 16
)

// DefaultTokenURL is where Teams credentials are exchanged for a token in a
// single-tenant bot registration.
func DefaultTokenURL(tenantID string) string {
	return "https://login.microsoftonline.com/" + url.PathEscape(tenantID) + "/oauth2/v2.0/token"
}

// Load reads and parses the configuration file at path. Errors name the file.
func Load(path string, getenv func(string) (string, bool)) (*Config, error) {
	return load(path, getenv, false)
}

// load reads the file at path and parses it, reading secret files named
// relative to it from beside it.
func load(path string, getenv func(string) (string, bool), demo bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	dir := filepath.Dir(path)
	readFile := func(name string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		return os.ReadFile(name)
	}
	cfg, err := parseAs(data, getenv, readFile, demo)
	if err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			ce.file = path
			return nil, ce
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse reads a configuration file's contents, expands ${VAR} references in
// its values through getenv, and checks every key. It reports every problem
// it finds, one per line, each with the line it stands on.
//
// Parse reads no file: *_file secret keys are refused; Load reads them.
// The server always calls Load; Parse is for tests and fuzz targets,
// which check configuration text without files around it.
func Parse(data []byte, getenv func(string) (string, bool)) (*Config, error) {
	return parse(data, getenv, nil)
}

func parse(data []byte, getenv func(string) (string, bool), readFile func(string) ([]byte, error)) (*Config, error) {
	return parseAs(data, getenv, readFile, false)
}

// LoadDemo is Load for approvebot demo: approvers may have web sides without
// a web section, since the demo's own sign-in (loopback only) takes the
// identity provider's place, and no chat platform is required.
func LoadDemo(path string, getenv func(string) (string, bool)) (*Config, error) {
	return load(path, getenv, true)
}

// ParseDemo is Parse for approvebot demo (see LoadDemo).
func ParseDemo(data []byte, getenv func(string) (string, bool)) (*Config, error) {
	return parseAs(data, getenv, nil, true)
}

func parseAs(data []byte, getenv func(string) (string, bool), readFile func(string) ([]byte, error), demo bool) (*Config, error) {
	if getenv == nil {
		getenv = func(string) (string, bool) { return "", false }
	}
	root, err := decodeRoot(data)
	if err != nil {
		return nil, err
	}
	p := &parser{getenv: getenv, readFile: readFile, demo: demo}
	p.checkNodes(root)
	if len(p.problems) > 0 {
		return nil, p.err()
	}
	cfg := p.config(root)
	if len(p.problems) > 0 {
		return nil, p.err()
	}
	return cfg, nil
}

// problem is one thing wrong in the file.
type problem struct {
	line int
	msg  string
}

// configError lists the problems of one file, in line order.
type configError struct {
	file     string
	problems []problem
}

// maxProblems bounds the report: past it, the file is more wrong than any
// list of problems can help with.
const maxProblems = 50

func (e *configError) Error() string {
	var b strings.Builder
	for i, pr := range e.problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if i == maxProblems {
			fmt.Fprintf(&b, "... and %d more problems", len(e.problems)-i)
			break
		}
		if e.file != "" {
			b.WriteString(e.file + ": ")
		}
		if pr.line > 0 {
			fmt.Fprintf(&b, "line %d: ", pr.line)
		}
		b.WriteString(pr.msg)
	}
	return b.String()
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func decodeRoot(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &configError{problems: []problem{{msg: "the configuration is empty: it needs at least callers, approvers and a slack or teams section (see examples/approvebot.yaml)"}}}
		}
		return nil, &configError{problems: []problem{yamlProblem(err, data)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, &configError{problems: []problem{yamlProblem(err, data)}}
		}
		return nil, &configError{problems: []problem{{line: extra.Line, msg: `a second YAML document ("---") follows the first: keep the whole configuration in one document`}}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &configError{problems: []problem{{line: doc.Line, msg: "the configuration is not a YAML document"}}}
	}
	root := doc.Content[0]
	if isNull(root) {
		return nil, &configError{problems: []problem{{line: root.Line, msg: "the configuration is empty: it needs at least callers, approvers and a slack or teams section (see examples/approvebot.yaml)"}}}
	}
	return root, nil
}

// yamlProblem turns a syntax error into a problem. ${VAR} inside a flow
// mapping or list ({...} or [...]) is a syntax error, because braces end a
// plain value there; the hint says how to write it.
func yamlProblem(err error, data []byte) problem {
	msg := err.Error()
	pr := problem{msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		pr.line, _ = strconv.Atoi(m[1])
		pr.msg = "invalid YAML: " + m[2]
	}
	lines := bytes.Split(data, []byte("\n"))
	for _, l := range []int{pr.line - 1, pr.line, pr.line - 2} { // the parser may blame a neighbour
		if l >= 0 && l < len(lines) && bytes.Contains(lines[l], []byte("${")) {
			pr.msg += ` (inside {...} or [...], quote a value that uses ${VAR}: token: "${TOKEN}")`
			break
		}
	}
	return pr
}

// parser walks the document and collects problems. It reads every value
// from the node tree rather than decoding into structs, so that each
// problem can name its key and line and ${VAR} is expanded per value.
type parser struct {
	getenv func(string) (string, bool)
	// readFile reads secret files (*_file keys); nil refuses them.
	readFile func(string) ([]byte, error)
	problems []problem
	// demo reads the file for approvebot demo, whose own sign-in stands in
	// for the web section.
	demo bool
	// later are checks that need the whole file read (a caller's
	// may_request names groups and chains defined further down).
	later []func(*Config)
}

func (p *parser) add(line int, format string, args ...any) {
	p.problems = append(p.problems, problem{line: line, msg: fmt.Sprintf(format, args...)})
}

func (p *parser) err() error {
	sort.SliceStable(p.problems, func(i, j int) bool { return p.problems[i].line < p.problems[j].line })
	return &configError{problems: p.problems}
}

// knownTags are the YAML core tags; anything else (custom "!tags",
// "!!binary") would be read as something it does not say it is.
var knownTags = map[string]bool{
	"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true,
	"!!map": true, "!!seq": true, "!!timestamp": true,
}

// checkNodes refuses aliases, which would let a small file expand into a
// huge one and make lines point at the anchor instead of the use, and
// unknown tags.
func (p *parser) checkNodes(n *yaml.Node) {
	if n.Kind == yaml.AliasNode {
		p.add(n.Line, "YAML aliases (*%s) are not supported: write the value out", n.Value)
		return
	}
	if tag := n.ShortTag(); !knownTags[tag] {
		p.add(n.Line, "YAML tag %q is not supported", tag)
	}
	for _, c := range n.Content {
		p.checkNodes(c)
	}
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

func join(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

// object is a YAML mapping whose keys have been checked against a schema.
type object struct {
	node *yaml.Node // nil when the key is absent
	path string
	val  map[string]*yaml.Node
}

func (o *object) line() int {
	if o == nil || o.node == nil {
		return 1
	}
	return o.node.Line
}

func (o *object) has(key string) bool {
	if o == nil {
		return false
	}
	_, ok := o.val[key]
	return ok
}

// object checks that n is a mapping holding only the allowed keys. A missing
// or null n reads as an empty mapping. It returns nil when n is not a
// mapping; every reader below treats a nil object as empty.
func (p *parser) object(n *yaml.Node, at string, allowed ...string) *object {
	o := &object{path: at, val: map[string]*yaml.Node{}}
	if isNull(n) {
		o.node = n
		return o
	}
	o.node = n
	if n.Kind != yaml.MappingNode {
		what := at
		if what == "" {
			what = "the configuration"
		}
		p.add(n.Line, "%s must be a mapping with the keys %s, not %s", what, strings.Join(allowed, ", "), describe(n))
		return nil
	}
	for _, e := range p.entries(n, at) {
		if !slices.Contains(allowed, e.key.Value) {
			where := "at the top level"
			if at != "" {
				where = "in " + at
			}
			p.add(e.key.Line, "unknown key %q %s (want %s)", e.key.Value, where, strings.Join(allowed, ", "))
			continue
		}
		o.val[e.key.Value] = e.val
	}
	return o
}

type entry struct {
	key, val *yaml.Node
}

// entries lists a mapping's pairs, refusing repeated and non-scalar keys.
func (p *parser) entries(n *yaml.Node, at string) []entry {
	where := "at the top level"
	if at != "" {
		where = "in " + at
	}
	var out []entry
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) {
			p.add(k.Line, "a key %s must be a plain name, not %s", where, describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.add(k.Line, "key %q %s is repeated (first at line %d)", k.Value, where, first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, entry{k, v})
	}
	return out
}

// need says what an empty value means for a key.
type need int

const (
	// required: the value must be there and not be empty.
	required need = iota
	// optional: absent or empty means the default; a ${VAR} used in it
	// must still be set (perhaps to "").
	optional
	// defaultIfUnset: like optional, and a value that is exactly ${VAR}
	// with VAR unset also means the default, so one file serves both
	// production and a test set-up that overrides the URL.
	defaultIfUnset
)

// value reads scalar n, expanding ${VAR}. ok is false when a problem was
// reported. Errors never quote the value: it may be a secret.
func (p *parser) value(n *yaml.Node, at string, nd need) (s string, ok bool) {
	if n.Kind != yaml.ScalarNode {
		p.add(n.Line, "%s must be a single value, not %s", at, describe(n))
		return "", false
	}
	if isNull(n) {
		if nd == required {
			p.add(n.Line, "%s is empty: give it a value", at)
			return "", false
		}
		return "", true
	}
	s, exp, err := expand(n.Value, p.getenv)
	if err != nil {
		p.add(n.Line, "%s: %v", at, err)
		return "", false
	}
	if len(exp.unset) > 0 {
		if nd == defaultIfUnset && exp.whole != "" {
			return "", true
		}
		p.add(n.Line, "%s: environment variable %s is not set", at, strings.Join(exp.unset, ", "))
		return "", false
	}
	if s == "" && nd == required {
		if len(exp.empty) > 0 {
			p.add(n.Line, "%s: environment variable %s is set but empty", at, strings.Join(exp.empty, ", "))
		} else {
			p.add(n.Line, "%s is empty: give it a value", at)
		}
		return "", false
	}
	return s, true
}

// str reads o's key. An absent key is "" (or a problem when required).
func (p *parser) str(o *object, key string, nd need) string {
	if o == nil {
		return ""
	}
	n, ok := o.val[key]
	if !ok {
		if nd == required {
			p.add(o.line(), "%s is missing", join(o.path, key))
		}
		return ""
	}
	s, _ := p.value(n, join(o.path, key), nd)
	return s
}

// secret reads a credential: required unless minLen is 0 (then optional),
// without surrounding space or control characters, at least minLen long.
// It comes from the key itself (usually ${VAR}) or, with key_file, from a
// file (a Kubernetes secret mounted as files, a systemd credential): the
// file's content is the secret, less one trailing newline. Every secret key
// has its _file twin; the two exclude each other.
func (p *parser) secret(o *object, key string, minLen int) string {
	nd := required
	if minLen == 0 {
		nd = optional
	}
	var s string
	if o.has(key + "_file") {
		if o.has(key) {
			p.add(o.val[key].Line, "%s and %s_file are both set: give the secret one way", join(o.path, key), join(o.path, key))
			return ""
		}
		s = p.secretFile(o, key+"_file")
		key += "_file"
	} else {
		s = p.str(o, key, nd)
	}
	if s == "" {
		return ""
	}
	at, line := join(o.path, key), o.val[key].Line
	if strings.TrimSpace(s) != s || strings.ContainsFunc(s, unicode.IsControl) {
		p.add(line, "%s contains spaces or control characters at its ends or inside (a trailing newline from a secret file?)", at)
		return ""
	}
	if minLen > 1 && len(s) < minLen {
		p.add(line, "%s: weak token: %d characters, want at least %d (e.g. openssl rand -hex 32)", at, len(s), minLen)
		return ""
	}
	return s
}

// secretFile reads the secret in the file o's key names. Only Load reads
// files; Parse, which must stay free of I/O, refuses the key.
func (p *parser) secretFile(o *object, key string) string {
	path := p.str(o, key, required)
	if path == "" {
		return ""
	}
	at, line := join(o.path, key), o.val[key].Line
	if p.readFile == nil {
		p.add(line, "%s: secret files are read only when the configuration is loaded from a file", at)
		return ""
	}
	data, err := p.readFile(path)
	if err != nil {
		p.add(line, "%s: cannot read the secret: %v", at, err)
		return ""
	}
	s := strings.TrimSuffix(string(data), "\n")
	s = strings.TrimSuffix(s, "\r")
	if s == "" {
		p.add(line, "%s: %s is empty", at, path)
	}
	return s
}

// lineOf is the line of key, or of its _file twin.
func (o *object) lineOf(key string) int {
	if n, ok := o.val[key]; ok {
		return n.Line
	}
	if n, ok := o.val[key+"_file"]; ok {
		return n.Line
	}
	return o.line()
}

// list reads o's key as a list of non-empty, distinct values.
func (p *parser) list(o *object, key string) []string {
	out, _ := p.listNodes(o, key)
	return out
}

// listNodes is list that also returns each value's node, for messages.
func (p *parser) listNodes(o *object, key string) ([]string, []*yaml.Node) {
	if o == nil {
		return nil, nil
	}
	n, ok := o.val[key]
	if !ok || isNull(n) {
		return nil, nil
	}
	at := join(o.path, key)
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, "%s must be a list, e.g. [a, b], not %s", at, describe(n))
		return nil, nil
	}
	var out []string
	var nodes []*yaml.Node
	seen := map[string]int{}
	for i, item := range n.Content {
		s, ok := p.value(item, fmt.Sprintf("%s[%d]", at, i), required)
		if !ok {
			continue
		}
		if first, dup := seen[s]; dup {
			p.add(item.Line, "%s lists %q twice (first at line %d)", at, s, first)
			continue
		}
		seen[s] = item.Line
		out = append(out, s)
		nodes = append(nodes, item)
	}
	return out, nodes
}

func (p *parser) bool(o *object, key string) bool {
	s := p.str(o, key, optional)
	switch s {
	case "", "false", "False", "FALSE":
		return false
	case "true", "True", "TRUE":
		return true
	}
	p.add(o.val[key].Line, "%s must be true or false", join(o.path, key))
	return false
}

var digits = regexp.MustCompile(`^[+-]?[0-9]+$`)

// duration reads a Go duration. Zero is allowed only when allowZero; absent
// or empty gives def.
func (p *parser) duration(o *object, key string, def time.Duration, allowZero bool) time.Duration {
	s := p.str(o, key, optional)
	if s == "" {
		return def
	}
	at, line := join(o.path, key), o.val[key].Line
	if digits.MatchString(s) {
		p.add(line, `%s: %s has no unit: write a duration with units like "90s" or "5m"`, at, s)
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.add(line, `%s: %q is not a duration: use units like "90s", "5m" or "1h30m"`, at, s)
		return def
	}
	switch {
	case d < 0 || (d == 0 && !allowZero):
		p.add(line, "%s must be more than 0, not %s", at, s)
	case d > MaxTimeout:
		p.add(line, "%s may be at most 24h, not %s", at, s)
	}
	return d
}

// maxCallerLimit bounds a caller's burst and max_pending, and its rate a
// second: past it a limit limits nothing.
const maxCallerLimit = 1_000_000

var ratePattern = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|m|h)$`)

// rate reads a request rate: a number per second, minute or hour ("10/s",
// "600/m", "100/h"), as requests a second. Absent or empty gives def.
func (p *parser) rate(o *object, key string, def float64) float64 {
	s := p.str(o, key, optional)
	if s == "" {
		return def
	}
	at, line := join(o.path, key), o.val[key].Line
	m := ratePattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		if digits.MatchString(s) {
			p.add(line, `%s: %s has no unit: write a rate like "10/s" or "600/m"`, at, s)
		} else {
			p.add(line, `%s: %q is not a rate: write a number of requests per s, m or h, e.g. "10/s" or "600/m"`, at, s)
		}
		return def
	}
	n, err := strconv.ParseFloat(m[1], 64)
	per := map[string]float64{"s": 1, "m": 60, "h": 3600}[m[2]]
	switch {
	case err != nil || n/per > maxCallerLimit:
		p.add(line, "%s: %s is too high (at most %d/s)", at, s, maxCallerLimit)
		return def
	case n == 0:
		p.add(line, "%s must be more than 0, not %s (remove the caller to stop it asking)", at, s)
		return def
	}
	return n / per
}

// count reads a whole number from 1 to max. Absent or empty gives def.
func (p *parser) count(o *object, key string, def, max int) int {
	s := p.str(o, key, optional)
	if s == "" {
		return def
	}
	at, line := join(o.path, key), o.val[key].Line
	if !digits.MatchString(s) {
		p.add(line, "%s must be a whole number, not %q", at, s)
		return def
	}
	n, err := strconv.Atoi(s)
	switch {
	case err != nil || n > max:
		p.add(line, "%s: %s is too large (at most %d)", at, s, max)
		return def
	case n < 1:
		p.add(line, "%s must be at least 1, not %s", at, s)
		return def
	}
	return n
}

// MinStoreSize is the smallest store.max_size accepted: below it a handful of
// requests would fill the file.
const MinStoreSize = 1 << 20

var sizeUnits = map[string]int64{
	"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
}

var sizePattern = regexp.MustCompile(`^([0-9]+)\s*([A-Za-z]+)$`)

// size reads a byte count with a unit ("64MiB", "1GB"). Absent or empty
// gives 0 (no limit); otherwise it must be at least min.
func (p *parser) size(o *object, key string, min int64) int64 {
	s := p.str(o, key, optional)
	if s == "" {
		return 0
	}
	at, line := join(o.path, key), o.val[key].Line
	m := sizePattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		if digits.MatchString(s) {
			p.add(line, `%s: %s has no unit: write a size like "64MiB" or "1GiB"`, at, s)
		} else {
			p.add(line, `%s: %q is not a size: write a number and a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. "64MiB"`, at, s)
		}
		return 0
	}
	unit, ok := sizeUnits[m[2]]
	if !ok {
		p.add(line, `%s: unknown unit %q in %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`, at, m[2], s)
		return 0
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > math.MaxInt64/unit {
		p.add(line, "%s: %s is too large", at, s)
		return 0
	}
	if n*unit < min {
		p.add(line, "%s must be at least 1MiB, not %s", at, s)
		return 0
	}
	return n * unit
}

// quorum reads "any", "all" or a positive count.
func (p *parser) quorum(o *object, key string) approvebot.Quorum {
	s := p.str(o, key, optional)
	switch s {
	case "", approvebot.QuorumAny:
		return approvebot.Quorum{Mode: approvebot.QuorumAny}
	case approvebot.QuorumAll:
		return approvebot.Quorum{Mode: approvebot.QuorumAll}
	}
	at, line := join(o.path, key), o.val[key].Line
	if !digits.MatchString(s) {
		p.add(line, "%s must be any, all or a number of approvals such as 2, not %q", at, s)
		return approvebot.Quorum{Mode: approvebot.QuorumAny}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		p.add(line, "%s: %s is too large", at, s)
		return approvebot.Quorum{Mode: approvebot.QuorumAny}
	}
	if n < 1 {
		p.add(line, "%s must be at least 1, not %s", at, s)
		return approvebot.Quorum{Mode: approvebot.QuorumAny}
	}
	return approvebot.Quorum{Mode: approvebot.QuorumCount, N: n}
}

// httpURL reads an optional http(s) URL.
func (p *parser) httpURL(o *object, key, def string) string {
	s := p.str(o, key, defaultIfUnset)
	if s == "" {
		return def
	}
	at, line := join(o.path, key), o.val[key].Line
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(line, "%s must be an http:// or https:// URL", at)
		return def
	}
	if u.User != nil {
		p.add(line, "%s must not carry a user or password", at)
		return def
	}
	return s
}

// expansion records the variables a value used.
type expansion struct {
	unset []string
	empty []string
	whole string // the variable's name when the value is exactly ${NAME}
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces ${NAME} with NAME's value and $$ with $. A lone $ is an
// error rather than a literal so that a forgotten brace in "$TOKEN" does
// not silently become the text "$TOKEN".
func expand(s string, getenv func(string) (string, bool)) (string, expansion, error) {
	var exp expansion
	if !strings.Contains(s, "$") {
		return s, exp, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i += 2
			continue
		}
		if i+1 >= len(s) || s[i+1] != '{' {
			return "", exp, errors.New(`a "$" not followed by "{": write "${NAME}" for an environment variable or "$$" for a literal "$"`)
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", exp, errors.New(`"${" without its closing "}"`)
		}
		name := s[i+2 : i+2+end]
		if !varName.MatchString(name) {
			return "", exp, fmt.Errorf("%q is not an environment variable name (letters, digits and _, not starting with a digit)", name)
		}
		v, ok := getenv(name)
		switch {
		case !ok:
			if !slices.Contains(exp.unset, name) {
				exp.unset = append(exp.unset, name)
			}
		case v == "":
			if !slices.Contains(exp.empty, name) {
				exp.empty = append(exp.empty, name)
			}
		}
		b.WriteString(v)
		if i == 0 && i+3+end == len(s) {
			exp.whole = name
		}
		i += 3 + end
	}
	return b.String(), exp, nil
}

var (
	guid       = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	slackUser  = regexp.MustCompile(`^[UW][A-Z0-9]+$`)
	slackGroup = regexp.MustCompile(`^S[A-Z0-9]+$`)
)

func isEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return at > 0 && at < len(s)-1 && !strings.ContainsFunc(s, unicode.IsSpace)
}

// groupRef is a list of groups a route or stage names, with its quorum,
// checked once every group is known.
type groupRef struct {
	at   string // key path, for messages
	line int
	q    approvebot.Quorum
	qAt  string
	qLn  int
	list []string
}

func (p *parser) config(root *yaml.Node) *Config {
	top := p.object(root, "", "listen", "store", "callers", "slack", "teams", "signing", "admin", "delivery", "approvers", "routes", "chains", "shutdown_grace", "public_url", "tls", "audit", "server", "web")
	if top == nil {
		return nil
	}
	cfg := &Config{}

	cfg.Listen = p.str(top, "listen", optional)
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	} else if _, port, err := net.SplitHostPort(cfg.Listen); err != nil || port == "" {
		p.add(top.val["listen"].Line, "listen must be host:port, e.g. 127.0.0.1:8080")
	}

	cfg.PublicURL = p.httpURL(top, "public_url", "")

	tlsSection := p.object(top.val["tls"], "tls", "cert_file", "key_file")
	cfg.TLS.CertFile = p.str(tlsSection, "cert_file", optional)
	cfg.TLS.KeyFile = p.str(tlsSection, "key_file", optional)
	if (cfg.TLS.CertFile == "") != (cfg.TLS.KeyFile == "") {
		p.add(tlsSection.line(), "tls needs both cert_file and key_file (or neither, to serve plain HTTP behind a proxy)")
	}

	store := p.object(top.val["store"], "store", "path", "max_size", "retention")
	cfg.Store.Path = p.str(store, "path", optional)
	if cfg.Store.Path == "" {
		cfg.Store.Path = DefaultStorePath
	}
	cfg.Store.MaxSize = p.size(store, "max_size", MinStoreSize)
	cfg.Store.Retention = p.retention(store, "retention")

	cfg.ShutdownGrace = p.duration(top, "shutdown_grace", DefaultShutdownGrace, true)
	if cfg.ShutdownGrace > 10*time.Minute {
		p.add(top.val["shutdown_grace"].Line, "shutdown_grace may be at most 10m, not %s", cfg.ShutdownGrace)
	}

	p.server(top, cfg)
	p.callers(top, cfg)

	if top.has("slack") {
		o := p.object(top.val["slack"], "slack", "bot_token", "bot_token_file", "signing_secret", "signing_secret_file", "api_url", "channel_interval", "socket_mode", "app_token", "app_token_file")
		sc := &SlackConfig{
			BotToken:        p.secret(o, "bot_token", 1),
			SocketMode:      p.bool(o, "socket_mode"),
			APIURL:          p.httpURL(o, "api_url", DefaultSlackAPIURL),
			ChannelInterval: p.duration(o, "channel_interval", DefaultChannelInterval, true),
		}
		if sc.BotToken != "" && !strings.HasPrefix(sc.BotToken, "xoxb-") {
			p.add(o.val["bot_token"].Line, "slack.bot_token must be the app's bot token (it starts with xoxb-)")
		}
		// In Socket Mode clicks arrive over a websocket that approvebot
		// opens with the app-level token, so there is no signed request to
		// verify and the signing secret is optional; over HTTP it is what
		// authenticates every click.
		if sc.SocketMode {
			sc.AppToken = p.secret(o, "app_token", 1)
			sc.SigningSecret = p.secret(o, "signing_secret", 0)
			if sc.AppToken != "" && !strings.HasPrefix(sc.AppToken, "xapp-") {
				p.add(o.val["app_token"].Line, "slack.app_token must be an app-level token (it starts with xapp-; Basic Information > App-Level Tokens, scope connections:write)")
			}
		} else {
			sc.SigningSecret = p.secret(o, "signing_secret", 1)
			if o != nil && o.has("app_token") {
				p.add(o.val["app_token"].Line, "slack.app_token is only used with slack.socket_mode: true; set socket_mode or remove app_token")
			}
		}
		if sc.ChannelInterval > time.Minute {
			p.add(o.val["channel_interval"].Line, "slack.channel_interval may be at most 1m")
		}
		if !strings.HasSuffix(sc.APIURL, "/") {
			sc.APIURL += "/"
		}
		cfg.Slack = sc
	}
	if top.has("teams") {
		o := p.object(top.val["teams"], "teams", "app_id", "app_password", "app_password_file", "tenant_id", "openid_metadata_url", "token_url")
		tc := &TeamsConfig{
			AppID:       p.str(o, "app_id", required),
			AppPassword: p.secret(o, "app_password", 1),
			TenantID:    p.str(o, "tenant_id", required),
		}
		for key, v := range map[string]string{"app_id": tc.AppID, "tenant_id": tc.TenantID} {
			if v != "" && !guid.MatchString(v) {
				p.add(o.val[key].Line, "teams.%s must be a GUID such as 00000000-0000-0000-0000-000000000000 (see the Azure Bot registration)", key)
			}
		}
		tc.OpenIDMetadataURL = p.httpURL(o, "openid_metadata_url", DefaultOpenIDMetadataURL)
		tc.TokenURL = p.httpURL(o, "token_url", DefaultTokenURL(tc.TenantID))
		cfg.Teams = tc
	}
	p.web(top, cfg)
	if cfg.Slack == nil && cfg.Teams == nil && cfg.Web == nil && !p.demo {
		p.add(top.line(), "neither slack, teams nor web is configured: add at least one of the three sections")
	}

	signing := p.object(top.val["signing"], "signing", "key_file", "issuer")
	cfg.Signing.KeyFile = p.str(signing, "key_file", optional)
	if cfg.Signing.KeyFile == "" {
		cfg.Signing.KeyFile = filepath.Join(filepath.Dir(cfg.Store.Path), DefaultSigningKeyName)
	}
	cfg.Signing.Issuer = p.str(signing, "issuer", optional)
	if cfg.Signing.Issuer == "" {
		cfg.Signing.Issuer = DefaultIssuer
	}

	admin := p.object(top.val["admin"], "admin", "token", "token_file")
	cfg.Admin.Token = p.secret(admin, "token", 0)
	if cfg.Admin.Token != "" && len(cfg.Admin.Token) < MinSecretLength {
		p.add(admin.lineOf("token"), "admin.token: weak token: %d characters, want at least %d (e.g. openssl rand -hex 32)", len(cfg.Admin.Token), MinSecretLength)
	}
	for _, c := range cfg.Callers {
		if cfg.Admin.Token != "" && c.TokenSHA256 == sha256.Sum256([]byte(cfg.Admin.Token)) {
			p.add(admin.lineOf("token"), "admin.token is also caller %q's token: give the operator a token of its own", c.Name)
		}
	}

	delivery := p.object(top.val["delivery"], "delivery", "timeout")
	cfg.Delivery.Timeout = p.duration(delivery, "timeout", DefaultDeliveryTimeout, false)

	p.audit(top, cfg)

	p.approvers(top, cfg)
	var refs []groupRef
	refs = append(refs, p.chains(top, cfg)...)
	refs = append(refs, p.routes(top, cfg)...)
	for _, r := range refs {
		p.checkGroups(cfg, r)
	}
	for _, check := range p.later {
		check(cfg)
	}
	p.checkCallerRoutes(cfg)
	return cfg
}

// web reads the web inbox's sign-in: the identity provider's issuer and
// the client registered with it. Its redirect URL is public_url's
// /inbox/callback, so public_url is required.
func (p *parser) web(top *object, cfg *Config) {
	if !top.has("web") {
		return
	}
	o := p.object(top.val["web"], "web", "issuer", "client_id", "client_secret", "client_secret_file", "groups_claim")
	if o == nil {
		return
	}
	wc := &WebConfig{
		Issuer:       p.httpURL(o, "issuer", ""),
		ClientID:     p.str(o, "client_id", required),
		ClientSecret: p.secret(o, "client_secret", 1),
		GroupsClaim:  p.str(o, "groups_claim", optional),
	}
	if !o.has("issuer") {
		p.add(o.line(), "web.issuer is missing: the identity provider's issuer URL (e.g. https://login.microsoftonline.com/<tenant>/v2.0)")
	}
	switch {
	case cfg.PublicURL == "":
		p.add(o.line(), "web needs public_url: the sign-in redirect URL is <public_url>/inbox/callback")
	default:
		u, _ := url.Parse(cfg.PublicURL)
		if u != nil && u.Scheme != "https" && !isLoopbackHost(u.Hostname()) {
			p.add(top.val["public_url"].Line, "public_url must be https:// for the web inbox (sign-in cookies are Secure), or a loopback address to try it locally")
		}
		wc.RedirectURL = strings.TrimSuffix(cfg.PublicURL, "/") + "/inbox/callback"
	}
	cfg.Web = wc
}

// isLoopbackHost reports whether host is localhost or a loopback address.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// audit reads the audit section: checkpoints go to the log by default, and
// to a file when one is named.
func (p *parser) audit(top *object, cfg *Config) {
	audit := p.object(top.val["audit"], "audit", "checkpoint_interval", "checkpoints")
	cfg.Audit.CheckpointInterval = p.duration(audit, "checkpoint_interval", DefaultCheckpointInterval, true)
	var sinks *object
	if audit != nil {
		sinks = p.object(audit.val["checkpoints"], "audit.checkpoints", "file", "log")
	}
	cfg.Audit.CheckpointFile = p.str(sinks, "file", optional)
	cfg.Audit.CheckpointLog = true
	if sinks != nil && sinks.has("log") {
		cfg.Audit.CheckpointLog = p.bool(sinks, "log")
	}
	if f := cfg.Audit.CheckpointFile; f != "" {
		line := sinks.val["file"].Line
		for _, other := range []struct{ key, path string }{{"store.path", cfg.Store.Path}, {"signing.key_file", cfg.Signing.KeyFile}} {
			if filepath.Clean(f) == filepath.Clean(other.path) {
				p.add(line, "audit.checkpoints.file is also %s: checkpoints need a file of their own, on another volume than the store", other.key)
			}
		}
	}
}

func (p *parser) callers(top *object, cfg *Config) {
	n := top.val["callers"]
	if isNull(n) {
		p.add(top.line(), "callers is missing: list at least one agent allowed to ask, e.g. - {name: payments-agent, token: ${PAYMENTS_AGENT_TOKEN}}")
		return
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.add(n.Line, "callers must be a list of at least one {name, token}")
		return
	}
	names := map[string]int{}
	tokens := map[[32]byte]string{}
	for i, item := range n.Content {
		o := p.object(item, fmt.Sprintf("callers[%d]", i), "name", "token", "token_file", "token_sha256", "may_request", "rate", "burst", "max_pending")
		if o == nil {
			continue
		}
		c := Caller{Name: p.str(o, "name", required)}
		if o.has("token_sha256") {
			// The file holds only the token's hash: whoever reads the config
			// cannot call as this agent. The token itself is not seen, so
			// its strength cannot be checked here.
			if o.has("token") || o.has("token_file") {
				p.add(o.val["token_sha256"].Line, "callers[%d]: give token, token_file or token_sha256, not several", i)
			}
			h := p.str(o, "token_sha256", required)
			b, err := hex.DecodeString(h)
			if err != nil || len(b) != sha256.Size || strings.ToLower(h) != h {
				p.add(o.val["token_sha256"].Line, "callers[%d].token_sha256 must be 64 lowercase hex digits, the SHA-256 of the token (printf %%s \"$TOKEN\" | sha256sum)", i)
			} else {
				copy(c.TokenSHA256[:], b)
			}
		} else if c.Token = p.secret(o, "token", MinSecretLength); c.Token != "" {
			c.TokenSHA256 = sha256.Sum256([]byte(c.Token))
		}
		c.MayRequest = p.mayRequest(o)
		c.Rate = p.rate(o, "rate", DefaultCallerRate)
		c.Burst = p.count(o, "burst", DefaultCallerBurst, maxCallerLimit)
		c.MaxPending = p.count(o, "max_pending", DefaultCallerMaxPending, maxCallerLimit)
		if c.Name != "" {
			if first, dup := names[c.Name]; dup {
				p.add(o.val["name"].Line, "callers[%d].name %q is already used at line %d: caller names must be unique", i, c.Name, first)
			}
			names[c.Name] = o.val["name"].Line
		}
		if c.TokenSHA256 != ([32]byte{}) {
			if other, dup := tokens[c.TokenSHA256]; dup {
				p.add(o.lineOf("token"), "callers[%d].token is the same as caller %q's: each caller needs its own token", i, other)
			}
			tokens[c.TokenSHA256] = c.Name
		}
		cfg.Callers = append(cfg.Callers, c)
	}
}

// mayRequest reads a caller's may_request: nil when absent (anywhere),
// otherwise the groups and chains it may ask, checked once they are known.
func (p *parser) mayRequest(o *object) []string {
	if !o.has("may_request") {
		return nil
	}
	at := join(o.path, "may_request")
	names, nodes := p.listNodes(o, "may_request")
	if len(names) == 0 {
		if n := o.val["may_request"]; isNull(n) || n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
			p.add(n.Line, "%s is empty: list the approver groups and chains the caller may ask, or remove the key to allow any", at)
		}
		return []string{}
	}
	p.later = append(p.later, func(cfg *Config) {
		for i, name := range names {
			_, group := cfg.Approvers[name]
			_, chain := cfg.Chains[name]
			if !group && !chain {
				p.add(nodes[i].Line, "%s: %q is neither an approver group%s nor a chain%s", at, name, known(cfg.Approvers), known(cfg.Chains))
			}
		}
	})
	return names
}

// checkCallerRoutes checks routes that match a caller: the pattern must
// match some configured caller, and a route for one caller must not send
// its requests where that caller's may_request forbids (every one would be
// refused).
func (p *parser) checkCallerRoutes(cfg *Config) {
	for i, r := range cfg.Routes {
		pat := r.Match.Caller
		if pat == "" {
			continue
		}
		var hit []Caller
		for _, c := range cfg.Callers {
			if glob(pat, c.Name) {
				hit = append(hit, c)
			}
		}
		if len(hit) == 0 {
			names := make(map[string]bool, len(cfg.Callers))
			for _, c := range cfg.Callers {
				names[c.Name] = true
			}
			p.add(r.Line, "routes[%d].match.caller: %q matches no caller%s", i, pat, known(names))
			continue
		}
		for _, c := range hit {
			if c.MayRequest == nil {
				continue
			}
			var refused []string
			if r.Chain != "" {
				if !slices.Contains(c.MayRequest, r.Chain) {
					refused = append(refused, r.Chain)
				}
			} else {
				for _, g := range r.Approvers {
					if !slices.Contains(c.MayRequest, g) {
						refused = append(refused, g)
					}
				}
			}
			if len(refused) > 0 {
				p.add(r.Line, "routes[%d] sends caller %q's requests to %s, which its may_request does not list: every such request would be refused", i, c.Name, quoteAll(refused))
			}
		}
	}
}

// notify reads a platform side's notify list (at names the side): whether
// it reaches the listed users directly, and whether it posts to channels
// (the default).
func (p *parser) notify(o *object, at string) (dm, channels bool) {
	if !o.has("notify") {
		return false, true
	}
	list, nodes := p.listNodes(o, "notify")
	for i, n := range list {
		switch n {
		case "channels":
			channels = true
		case "dm":
			dm = true
		default:
			p.add(nodes[i].Line, "%s.notify: %q is not a way to reach approvers (want channels, dm)", at, n)
		}
	}
	if len(list) == 0 {
		p.add(o.lineOf("notify"), "%s.notify is empty: list channels, dm or both", at)
	}
	return dm, channels
}

func (p *parser) approvers(top *object, cfg *Config) {
	cfg.Approvers = map[string]approvebot.Group{}
	n := top.val["approvers"]
	if isNull(n) || (n.Kind == yaml.MappingNode && len(n.Content) == 0) {
		p.add(top.line(), "approvers is missing: define at least one approver group, e.g. treasury-ops: {slack: {channels: [C0123], users: [U0123]}}")
		return
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, "approvers must be a mapping of group names to groups, not %s", describe(n))
		return
	}
	for _, e := range p.entries(n, "approvers") {
		name := e.key.Value
		at := "approvers." + name
		if strings.TrimSpace(name) != name || name == "" {
			p.add(e.key.Line, "%q: group names may not be empty or start or end with spaces", name)
			continue
		}
		o := p.object(e.val, at, "slack", "teams", "web")
		if o == nil {
			continue
		}
		g := approvebot.Group{Name: name}
		if so := p.object(o.val["slack"], at+".slack", "channels", "users", "usergroups", "notify"); o.has("slack") && so != nil {
			sg := &approvebot.SlackGroup{}
			var chans, users, ugs []*yaml.Node
			var notifyChannels bool
			sg.DM, notifyChannels = p.notify(so, at+".slack")
			sg.Channels, chans = p.listNodes(so, "channels")
			sg.Users, users = p.listNodes(so, "users")
			sg.Usergroups, ugs = p.listNodes(so, "usergroups")
			for i, c := range sg.Channels {
				if strings.Contains(c, "#") || strings.ContainsFunc(c, unicode.IsSpace) {
					p.add(chans[i].Line, "%s.slack.channels: %q is a channel name; give its ID instead (C0123ABC: channel details, at the bottom)", at, c)
				}
			}
			for i, u := range sg.Users {
				if !slackUser.MatchString(u) && !isEmail(u) {
					p.add(users[i].Line, "%s.slack.users: %q is neither a Slack user ID (U0123ABC) nor an email", at, u)
				}
			}
			for i, ug := range sg.Usergroups {
				if !slackGroup.MatchString(ug) {
					p.add(ugs[i].Line, "%s.slack.usergroups: %q is not a user group ID (they start with S, e.g. S0123ABC)", at, ug)
				}
			}
			if cfg.Slack == nil {
				p.add(so.line(), "%s.slack: the file has no slack section: add one (bot_token, signing_secret) or remove this side", at)
			}
			switch {
			case sg.DM && len(sg.Users) == 0:
				p.add(so.lineOf("notify"), "%s.slack.notify: dm needs users to message (user groups cannot be messaged)", at)
			case !notifyChannels && len(sg.Channels) > 0:
				p.add(so.lineOf("channels"), "%s.slack: channels are listed but notify has no channels: add channels to notify or remove them", at)
			case notifyChannels:
				p.checkSide(so.line(), at+".slack", "Slack", len(sg.Channels), len(sg.Users)+len(sg.Usergroups), "users or usergroups")
			}
			g.Slack = sg
		}
		if to := p.object(o.val["teams"], at+".teams", "channels", "users", "allow_guests", "notify"); o.has("teams") && to != nil {
			tg := &approvebot.TeamsGroup{AllowGuests: p.bool(to, "allow_guests")}
			var chans, users []*yaml.Node
			var notifyChannels bool
			tg.DM, notifyChannels = p.notify(to, at+".teams")
			tg.Channels, chans = p.listNodes(to, "channels")
			tg.Users, users = p.listNodes(to, "users")
			for i, c := range tg.Channels {
				if !strings.HasPrefix(c, "19:") {
					p.add(chans[i].Line, "%s.teams.channels: %q is not a Teams channel ID (19:...@thread.tacv2: \"Get link to channel\")", at, c)
				}
			}
			for i, u := range tg.Users {
				if !guid.MatchString(u) && !isEmail(u) {
					p.add(users[i].Line, "%s.teams.users: %q is neither an Entra object ID (a GUID) nor an email or UPN", at, u)
				}
			}
			if cfg.Teams == nil {
				p.add(to.line(), "%s.teams: the file has no teams section: add one (app_id, app_password, tenant_id) or remove this side", at)
			}
			switch {
			case tg.DM && len(tg.Users) == 0:
				p.add(to.lineOf("notify"), "%s.teams.notify: dm needs users to message", at)
			case !notifyChannels && len(tg.Channels) > 0:
				p.add(to.lineOf("channels"), "%s.teams: channels are listed but notify has no channels: add channels to notify or remove them", at)
			case notifyChannels:
				p.checkSide(to.line(), at+".teams", "Teams", len(tg.Channels), len(tg.Users), "users")
			}
			g.Teams = tg
		}
		if wo := p.object(o.val["web"], at+".web", "users", "groups"); o.has("web") && wo != nil {
			wg := &approvebot.WebGroup{}
			var users []*yaml.Node
			wg.Users, users = p.listNodes(wo, "users")
			wg.Groups = p.list(wo, "groups")
			for i, u := range wg.Users {
				if sub, ok := strings.CutPrefix(u, "sub:"); ok {
					if sub == "" || strings.ContainsFunc(sub, unicode.IsSpace) {
						p.add(users[i].Line, "%s.web.users: %q: give the subject after sub:, without spaces", at, u)
					}
				} else if !isEmail(u) {
					p.add(users[i].Line, "%s.web.users: %q is neither an email nor sub:<subject>", at, u)
				}
			}
			if len(wg.Groups) > 0 && cfg.Web != nil && cfg.Web.GroupsClaim == "" {
				p.add(wo.lineOf("groups"), "%s.web.groups needs web.groups_claim: name the ID token claim that lists a person's groups", at)
			}
			if len(wg.Users)+len(wg.Groups) == 0 {
				p.add(wo.line(), "%s.web is empty: list users (emails or sub:<subject>) or groups", at)
			}
			if cfg.Web == nil && !p.demo {
				p.add(wo.line(), "%s.web: the file has no web section: add one (issuer, client_id, client_secret) or remove this side", at)
			}
			g.Web = wg
		}
		if !o.has("slack") && !o.has("teams") && !o.has("web") {
			p.add(e.key.Line, "%s names nobody who may approve: give it a slack, teams or web side with channels and users", at)
		}
		cfg.Approvers[name] = g
	}
}

// checkSide insists that a platform side both shows requests somewhere and
// names someone who may decide them there.
func (p *parser) checkSide(line int, at, platform string, channels, deciders int, who string) {
	switch {
	case channels == 0 && deciders == 0:
		p.add(line, "%s is empty: list channels and %s", at, who)
	case deciders == 0:
		p.add(line, "%s: channels set but no %s: nobody could approve from %s", at, who, platform)
	case channels == 0:
		p.add(line, "%s: %s set but no channels: the request would never be shown on %s", at, who, platform)
	}
}

func (p *parser) chains(top *object, cfg *Config) []groupRef {
	cfg.Chains = map[string]ChainConfig{}
	n := top.val["chains"]
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, "chains must be a mapping of chain IDs to chains, not %s", describe(n))
		return nil
	}
	var refs []groupRef
	for _, e := range p.entries(n, "chains") {
		id := e.key.Value
		at := "chains." + id
		o := p.object(e.val, at, "version", "stages", "separation_of_duties", "timeout", "reminders", "before_deadline", "escalate", "reason", "confirm_approve")
		if o == nil {
			continue
		}
		ch := ChainConfig{
			ID:                 id,
			Version:            p.str(o, "version", required),
			SeparationOfDuties: p.bool(o, "separation_of_duties"),
			Timeout:            p.duration(o, "timeout", 0, false),
			Reminders:          p.reminders(o, &refs),
			Reason:             p.reason(o),
			ConfirmApprove:     p.bool(o, "confirm_approve"),
		}
		if vn, ok := o.val["version"]; ok && vn.ShortTag() == "!!bool" {
			p.add(vn.Line, `%s.version must be a version such as "3", not %s`, at, vn.Value)
		}
		sn := o.val["stages"]
		switch {
		case isNull(sn):
			p.add(o.line(), "%s.stages is missing: list at least one stage, e.g. - {approvers: [security], quorum: any}", at)
		case sn.Kind != yaml.SequenceNode || len(sn.Content) == 0:
			p.add(sn.Line, "%s.stages must be a list of at least one {approvers, quorum}", at)
		default:
			for i, item := range sn.Content {
				so := p.object(item, fmt.Sprintf("%s.stages[%d]", at, i), "approvers", "quorum")
				if so == nil {
					continue
				}
				st := StageConfig{Approvers: p.list(so, "approvers"), Quorum: p.quorum(so, "quorum")}
				if len(st.Approvers) == 0 {
					p.add(so.line(), "%s.approvers: list at least one approver group", so.path)
				}
				ch.Stages = append(ch.Stages, st)
				refs = append(refs, refOf(so, st.Approvers, st.Quorum))
			}
		}
		cfg.Chains[id] = ch
	}
	return refs
}

func refOf(o *object, groups []string, q approvebot.Quorum) groupRef {
	r := groupRef{at: join(o.path, "approvers"), line: o.line(), q: q, qAt: join(o.path, "quorum"), qLn: o.line(), list: groups}
	if n, ok := o.val["approvers"]; ok {
		r.line = n.Line
	}
	if n, ok := o.val["quorum"]; ok {
		r.qLn = n.Line
	}
	return r
}

var (
	legacyKeys = []string{"rule_name", "policy_name", "action"}
	v1Keys     = []string{"approval_chain_id", "operation", "target_resource"}
)

func (p *parser) routes(top *object, cfg *Config) []groupRef {
	n := top.val["routes"]
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, "routes must be a list, not %s", describe(n))
		return nil
	}
	var refs []groupRef
	catchAll := 0 // line of the first route matching everything
	for i, item := range n.Content {
		at := fmt.Sprintf("routes[%d]", i)
		o := p.object(item, at, "match", "approvers", "chain", "quorum", "timeout", "reminders", "before_deadline", "escalate", "reason", "confirm_approve")
		if o == nil {
			continue
		}
		r := Route{Line: item.Line}
		if o.has("reason") {
			rule := p.reason(o)
			r.Reason = &rule
		}
		if o.has("confirm_approve") {
			confirm := p.bool(o, "confirm_approve")
			r.ConfirmApprove = &confirm
		}
		mo := p.object(o.val["match"], at+".match", "rule_name", "policy_name", "action", "agent_id", "approval_chain_id", "operation", "target_resource", "caller")
		pattern := func(key string) string {
			s := p.str(mo, key, required)
			if mo != nil && mo.has(key) && s != "" {
				if _, err := path.Match(s, ""); err != nil {
					p.add(mo.val[key].Line, "%s.match.%s: %q is not a valid pattern (* ? [a-z] as in path.Match)", at, key, s)
				}
			}
			return s
		}
		r.Match = Match{
			RuleName:       readIf(mo, "rule_name", pattern),
			PolicyName:     readIf(mo, "policy_name", pattern),
			Action:         readIf(mo, "action", pattern),
			AgentID:        readIf(mo, "agent_id", pattern),
			ChainID:        readIf(mo, "approval_chain_id", pattern),
			Operation:      readIf(mo, "operation", pattern),
			TargetResource: readIf(mo, "target_resource", pattern),
			Caller:         readIf(mo, "caller", pattern),
		}
		var legacy, v1 []string
		for _, k := range legacyKeys {
			if mo.has(k) {
				legacy = append(legacy, k)
			}
		}
		for _, k := range v1Keys {
			if mo.has(k) {
				v1 = append(v1, k)
			}
		}
		if len(legacy) > 0 && len(v1) > 0 {
			p.add(mo.line(), "%s.match mixes legacy keys (%s) with schema 1.0 keys (%s): no request carries both, so it could never match", at, strings.Join(legacy, ", "), strings.Join(v1, ", "))
		}
		if catchAll > 0 {
			p.add(item.Line, "%s can never match: the route at line %d above matches every request", at, catchAll)
		} else if mo != nil && len(mo.val) == 0 {
			catchAll = item.Line
		}

		r.Chain = p.str(o, "chain", optional)
		r.Approvers = p.list(o, "approvers")
		r.Timeout = p.duration(o, "timeout", 0, false)
		r.Reminders = p.reminders(o, &refs)
		switch {
		case o.has("chain") && o.has("approvers"):
			p.add(o.line(), "%s sets both approvers and chain: keep exactly one", at)
		case r.Chain != "":
			if o.has("quorum") {
				p.add(o.val["quorum"].Line, "%s.quorum applies to approvers, not to a chain: set quorum on the chain's stages", at)
			}
			if _, ok := cfg.Chains[r.Chain]; !ok {
				p.add(o.val["chain"].Line, "%s.chain: chain %q is not defined under chains%s", at, r.Chain, known(cfg.Chains))
			}
		case len(r.Approvers) > 0:
			r.Quorum = p.quorum(o, "quorum")
			refs = append(refs, refOf(o, r.Approvers, r.Quorum))
		case !o.has("chain") && !o.has("approvers"):
			p.add(o.line(), "%s routes nowhere: set approvers (a list of groups) or chain", at)
		default:
			p.add(o.line(), "%s: approvers or chain is empty: name at least one group, or a chain", at)
		}
		cfg.Routes = append(cfg.Routes, r)
	}
	return refs
}

// reason reads o's reason: {deny: required|optional, approve: optional|none}.
// An absent key, or an absent half, takes its default (deny optional,
// approve none).
func (p *parser) reason(o *object) approvebot.ReasonRule {
	if o == nil || !o.has("reason") {
		return approvebot.ReasonRule{}
	}
	at := join(o.path, "reason")
	ro := p.object(o.val["reason"], at, "deny", "approve")
	if ro == nil {
		return approvebot.ReasonRule{}
	}
	one := func(key string, allowed ...string) string {
		v := p.str(ro, key, optional)
		if v != "" && !slices.Contains(allowed, v) {
			p.add(ro.val[key].Line, "%s.%s must be %s, not %q", at, key, strings.Join(allowed, " or "), v)
			return ""
		}
		return v
	}
	return approvebot.ReasonRule{
		Deny:    one("deny", approvebot.ReasonRequired, approvebot.ReasonOptional),
		Approve: one("approve", approvebot.ReasonOptional, approvebot.ReasonNone),
	}
}

func readIf(o *object, key string, read func(string) string) string {
	if !o.has(key) {
		return ""
	}
	return read(key)
}

func known[V any](m map[string]V) string {
	if len(m) == 0 {
		return " (none are)"
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return " (known: " + strings.Join(names, ", ") + ")"
}

// checkGroups checks that a stage's groups exist and that its quorum can be
// met. When every group lists only named users, a quorum larger than the
// number of distinct names could never be reached and every request would
// time out; with usergroups the membership is not known here.
func (p *parser) checkGroups(cfg *Config, r groupRef) {
	var unknown []string
	for _, name := range r.list {
		if _, ok := cfg.Approvers[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		p.add(r.line, "%s: group %s not defined under approvers%s", r.at, quoteAll(unknown), known(cfg.Approvers))
		return
	}
	people := map[string]bool{}
	for _, name := range r.list {
		g := cfg.Approvers[name]
		if g.Slack != nil {
			if len(g.Slack.Usergroups) > 0 {
				return
			}
			for _, u := range g.Slack.Users {
				people[strings.ToLower(u)] = true
			}
		}
		if g.Teams != nil {
			for _, u := range g.Teams.Users {
				people[strings.ToLower(u)] = true
			}
		}
	}
	switch {
	case r.q.Mode == approvebot.QuorumCount && r.q.N > len(people):
		p.add(r.qLn, "%s: %d approvals needed but %s list only %d distinct people and no usergroups: the quorum could never be met", r.qAt, r.q.N, strings.Join(r.list, ", "), len(people))
	case r.q.Mode == approvebot.QuorumAll && len(r.list) > len(people):
		p.add(r.qLn, "%s: all needs a different person for each of %d groups but %s list only %d distinct people: the quorum could never be met", r.qAt, len(r.list), strings.Join(r.list, ", "), len(people))
	}
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// reminders reads a route's or chain's reminders (a list of durations after
// the request opened, in rising order) and before_deadline.
func (p *parser) reminders(o *object, refs *[]groupRef) Reminders {
	var r Reminders
	if o == nil {
		return r
	}
	at := join(o.path, "reminders")
	if n, ok := o.val["reminders"]; ok && !isNull(n) {
		if n.Kind != yaml.SequenceNode {
			p.add(n.Line, `%s must be a list of durations, e.g. [10m, 1h], not %s`, at, describe(n))
		} else {
			prev := ""
			for i, item := range n.Content {
				key := fmt.Sprintf("%s[%d]", at, i)
				one := &object{val: map[string]*yaml.Node{key: item}}
				d := p.duration(one, key, 0, false)
				if d <= 0 {
					continue
				}
				if len(r.After) > 0 && d <= r.After[len(r.After)-1] {
					p.add(item.Line, "%s[%d]: %s must come after %s: list reminders in rising order", at, i, item.Value, prev)
					continue
				}
				r.After, prev = append(r.After, d), item.Value
			}
		}
	}
	r.BeforeDeadline = p.duration(o, "before_deadline", 0, false)
	at = join(o.path, "escalate")
	if n, ok := o.val["escalate"]; ok && !isNull(n) {
		if n.Kind != yaml.SequenceNode {
			p.add(n.Line, "%s must be a list of {after, approvers}, e.g. [{after: 15m, approvers: [leads]}], not %s", at, describe(n))
			return r
		}
		for i, item := range n.Content {
			eo := p.object(item, fmt.Sprintf("%s[%d]", at, i), "after", "approvers")
			if eo == nil {
				continue
			}
			if !eo.has("after") {
				p.add(eo.line(), "%s.after is missing: say how long after the request opened to escalate, e.g. 15m", eo.path)
			}
			esc := EscalationConfig{After: p.duration(eo, "after", 0, false), Approvers: p.list(eo, "approvers")}
			if len(esc.Approvers) == 0 {
				p.add(eo.line(), "%s.approvers: list at least one approver group to escalate to", eo.path)
				continue
			}
			if len(r.Escalate) > 0 && esc.After <= r.Escalate[len(r.Escalate)-1].After {
				p.add(eo.line(), "%s.after must come after the step before it: list escalations in rising order", eo.path)
			}
			r.Escalate = append(r.Escalate, esc)
			*refs = append(*refs, refOf(eo, esc.Approvers, approvebot.Quorum{Mode: approvebot.QuorumAny}))
		}
	}
	return r
}
