// Package intake owns the approval request body as agents send it: it reads
// the two bodies AGT's webhook handlers post (the legacy WebhookApproval body
// and the action-bound schema 1.0 body of VersionedWebhookApproval), refuses
// anything malformed with an error naming the field, and recomputes the
// digests schema 1.0 carries so a request is accepted only as it was hashed.
package intake

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/canon"
	"github.com/approvebot/approvebot/internal/jsonlex"
)

// Submission is a parsed request body.
type Submission struct {
	Schema        string            // approvebot.SchemaLegacy or approvebot.SchemaV1
	Fields        approvebot.Fields // as received
	Context       json.RawMessage   // optional "context" object: shown to approvers
	ActionBinding json.RawMessage   // optional "action_binding" object (1.0 only), verified against action_digest
	// Digest is what makes a retry "the same request": for 1.0 the verified
	// input_digest, for legacy the canonical digest of the whole body.
	Digest string
	// BodyDigest is "sha256:" and the hex SHA-256 of the body bytes exactly
	// as received: what a signed legacy answer names.
	BodyDigest string
	// Naive lists the time fields that carried no UTC offset and were read
	// as UTC, for the audit.
	Naive []string
}

// TypeApprovalRequest is the only body type agents send.
const TypeApprovalRequest = "approval_request"

// presented lists the schema 1.0 keys input_digest covers, in AGT's order.
var presented = []string{
	"approval_request_id", "policy_decision_id", "action_digest", "agent_id",
	"subject_id", "operation", "target_resource", "policy_version",
	"approval_chain_id", "approval_chain_version", "expires_at",
}

var (
	legacyKeys = []string{"type", "rule_name", "policy_name", "agent_id", "action", "approvers", "requested_at", "context"}
	// AGT's protocol ApprovalRequest also has requested_at,
	// fail_closed_on_timeout and status; input_digest does not cover them.
	v1Optional = []string{"requested_at", "fail_closed_on_timeout", "status"}
	v1Keys     = slices.Concat([]string{"schema_version", "type", "input_digest"}, presented, []string{"context", "action_binding"}, v1Optional)

	// presentedQuoted is each presented key as JSON text, for the
	// object input_digest is recomputed over.
	presentedQuoted = func() []string {
		q := make([]string, len(presented))
		for i, k := range presented {
			q[i] = strconv.Quote(k)
		}
		return q
	}()
)

// What ValidID and validDigest expect, for errors.
var (
	wantID     = fmt.Sprintf("an id of 1 to %d characters, each a letter, digit or one of _ - . : ~, and not only dots", approvebot.MaxIDLength)
	wantDigest = `"sha256:" followed by exactly 64 lowercase hex digits (0-9, a-f)`
)

// ValidID reports whether s is an id an agent may send: AGT types its ids
// as plain strings, so any short string of URL- and key-safe characters is
// one.
//
// An id of dots only ("." or "..") is refused: a URL path cannot name it.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > approvebot.MaxIDLength {
		return false
	}
	dots := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == ':', c == '~', c == '-':
			dots = false
		default:
			return false
		}
	}
	return !dots
}

// validDigest reports whether s is "sha256:" and 64 lowercase hex digits.
func validDigest(s string) bool {
	hexPart, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hexPart) != 64 {
		return false
	}
	for i := 0; i < len(hexPart); i++ {
		if c := hexPart[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Parse reads a request body. Errors are *approvebot.Error with Code
// EInvalid and Field naming the offending key. Expiry is not judged here:
// an expired request is still a well-formed one, and the engine answers it.
func Parse(body []byte) (*Submission, error) {
	if !utf8.Valid(body) {
		return nil, fieldErr("body", "not valid UTF-8")
	}
	members, err := decodeObject(body, "")
	if err != nil {
		return nil, err
	}
	m := make(map[string]json.RawMessage, len(members))
	for _, mb := range members {
		m[mb.key] = mb.raw
	}

	typ, err := requiredString(m, "type")
	if err != nil {
		return nil, err
	}
	if typ != TypeApprovalRequest {
		return nil, fieldErr("type", "must be %q, got %q", TypeApprovalRequest, clip(typ))
	}

	schema := approvebot.SchemaLegacy
	if raw, ok := m["schema_version"]; ok {
		v, err := asString(raw)
		if err != nil || v != approvebot.SchemaV1 {
			return nil, fieldErr("schema_version", "unsupported (got %s); supported: %q, or omit it for the legacy body", clip(string(raw)), approvebot.SchemaV1)
		}
		schema = approvebot.SchemaV1
	}

	allowed := legacyKeys
	if schema == approvebot.SchemaV1 {
		allowed = v1Keys
	}
	for _, mb := range members {
		if slices.Contains(allowed, mb.key) {
			continue
		}
		if schema == approvebot.SchemaLegacy && slices.Contains(v1Keys, mb.key) {
			return nil, fieldErr(mb.key, "unknown field %q in a legacy body (a schema 1.0 body needs \"schema_version\": %q)", mb.key, approvebot.SchemaV1)
		}
		return nil, fieldErr(clip(mb.key), "unknown field %q", clip(mb.key))
	}

	sum := sha256.Sum256(body)
	var bodyDigest [len("sha256:") + 2*sha256.Size]byte
	hex.Encode(bodyDigest[copy(bodyDigest[:], "sha256:"):], sum[:])
	s := &Submission{Schema: schema, BodyDigest: string(bodyDigest[:])}
	if raw, ok := m["context"]; ok {
		if !isObject(raw) {
			return nil, fieldErr("context", "want an object")
		}
		s.Context = raw
	}
	if schema == approvebot.SchemaV1 {
		err = parseV1(s, m)
	} else {
		err = parseLegacy(s, m, body)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func parseLegacy(s *Submission, m map[string]json.RawMessage, body []byte) error {
	f := &s.Fields
	f.Type = TypeApprovalRequest
	var err error
	if f.Action, err = requiredString(m, "action"); err != nil {
		return err
	}
	if f.RequestedAt, err = requiredString(m, "requested_at"); err != nil {
		return err
	}
	if err := s.checkTime("requested_at", f.RequestedAt); err != nil {
		return err
	}
	for _, o := range []struct {
		key string
		dst *string
	}{{"rule_name", &f.RuleName}, {"policy_name", &f.PolicyName}, {"agent_id", &f.AgentID}} {
		if raw, ok := m[o.key]; ok {
			if *o.dst, err = asString(raw); err != nil {
				return fieldErr(o.key, "want a string")
			}
		}
	}
	if raw, ok := m["approvers"]; ok {
		if f.Approvers, err = approvers(raw); err != nil {
			return err
		}
	}
	d, err := canon.Digest(body)
	if err != nil {
		return fieldErr("body", "cannot be canonicalized: %s", err.Error())
	}
	s.Digest = d
	return nil
}

// approvers reads the legacy list of approver groups.
func approvers(raw json.RawMessage) ([]string, error) {
	if list, ok := plainStrings(raw); ok {
		return list, nil
	}
	// Element by element: encoding/json would read a null element as "".
	var elems []json.RawMessage
	if !bytes.HasPrefix(raw, []byte("[")) || json.Unmarshal(raw, &elems) != nil {
		return nil, fieldErr("approvers", "want a list of strings")
	}
	list := make([]string, len(elems))
	for i, e := range elems {
		var err error
		if list[i], err = asString(e); err != nil {
			return nil, fieldErr("approvers", "want a list of strings; item %d is %s", i, clip(string(e)))
		}
	}
	return list, nil
}

func parseV1(s *Submission, m map[string]json.RawMessage) error {
	f := &s.Fields
	f.Type = TypeApprovalRequest
	f.SchemaVersion = approvebot.SchemaV1
	var err error
	strs := []struct {
		key   string
		dst   *string
		valid func(string) bool
		at    string // the format, for the error
	}{
		{"input_digest", &f.InputDigest, validDigest, wantDigest},
		{"approval_request_id", &f.ApprovalRequestID, ValidID, wantID},
		{"policy_decision_id", &f.PolicyDecisionID, ValidID, wantID},
		{"action_digest", &f.ActionDigest, validDigest, wantDigest},
		{"agent_id", &f.AgentID, nil, ""},
		{"operation", &f.Operation, nil, ""},
		{"policy_version", &f.PolicyVersion, nil, ""},
		{"approval_chain_id", &f.ApprovalChainID, ValidID, wantID},
		{"approval_chain_version", &f.ApprovalChainVersion, nil, ""},
		{"expires_at", &f.ExpiresAt, nil, ""},
	}
	for _, o := range strs {
		if *o.dst, err = requiredString(m, o.key); err != nil {
			return err
		}
		if o.valid != nil && !o.valid(*o.dst) {
			return fieldErr(o.key, "want %s; got %q (%d characters)", o.at, clip(*o.dst), utf8.RuneCountInString(*o.dst))
		}
	}
	if err := s.checkTime("expires_at", f.ExpiresAt); err != nil {
		return err
	}
	if err := parseV1Optional(s, m); err != nil {
		return err
	}
	if f.SubjectID, err = nullableString(m, "subject_id"); err != nil {
		return err
	}
	if f.TargetResource, err = nullableString(m, "target_resource"); err != nil {
		return err
	}

	// Hash the presented values as received: the digest covers the agent's
	// strings, not our reading of them.
	var x bytes.Buffer
	x.Grow(512)
	x.WriteByte('{')
	for i, k := range presented {
		if i > 0 {
			x.WriteByte(',')
		}
		x.WriteString(presentedQuoted[i])
		x.WriteByte(':')
		x.Write(m[k])
	}
	x.WriteByte('}')
	got, err := canon.Digest(x.Bytes())
	if err != nil {
		return fieldErr("input_digest", "presented fields cannot be canonicalized: %s", err.Error())
	}
	if got != f.InputDigest {
		return fieldErr("input_digest", "does not match the request: body says %s, fields hash to %s", f.InputDigest, got)
	}
	s.Digest = got

	if raw, ok := m["action_binding"]; ok {
		if err := checkBinding(raw, f); err != nil {
			return err
		}
		s.ActionBinding = raw
	}
	return nil
}

// checkBinding verifies an action binding against the request: its schema
// as AGT defines it, its agreement with the request's operation, agent and
// subject, and its digest against action_digest.
func checkBinding(raw json.RawMessage, f *approvebot.Fields) error {
	const field = "action_binding"
	members, err := decodeObject(raw, field)
	if err != nil {
		return err
	}
	m := map[string]json.RawMessage{}
	for _, mb := range members {
		if !slices.Contains([]string{"schema_version", "operation", "agent_id", "subject_id", "target", "parameters"}, mb.key) {
			return fieldErr(field, "unknown field %q", clip(mb.key))
		}
		m[mb.key] = mb.raw
	}
	for _, k := range []string{"schema_version", "operation", "agent_id"} {
		if _, err := requiredString(m, k); err != nil {
			return fieldErr(field, "%s: want a string", k)
		}
	}
	subject, err := nullableString(m, "subject_id")
	if err != nil {
		return fieldErr(field, "subject_id: want a string or null")
	}
	if raw, ok := m["parameters"]; !ok || !isObject(raw) {
		return fieldErr(field, "parameters: want an object")
	}
	rawTarget, ok := m["target"]
	if !ok || !isObject(rawTarget) {
		return fieldErr(field, "target: want an object")
	}
	tm := map[string]json.RawMessage{}
	tmembers, err := decodeObject(rawTarget, field+".target")
	if err != nil {
		return err
	}
	for _, mb := range tmembers {
		if !slices.Contains([]string{"tool_name", "tool_schema_version", "resource"}, mb.key) {
			return fieldErr(field, "target: unknown field %q", clip(mb.key))
		}
		tm[mb.key] = mb.raw
	}
	for _, k := range []string{"tool_name", "tool_schema_version"} {
		if _, err := requiredString(tm, k); err != nil {
			return fieldErr(field, "target.%s: want a string", k)
		}
	}
	if _, err := nullableString(tm, "resource"); err != nil {
		return fieldErr(field, "target.resource: want a string or null")
	}

	op, _ := asString(m["operation"])
	agent, _ := asString(m["agent_id"])
	switch {
	case op != f.Operation:
		return fieldErr(field, "operation %q differs from the request's %q", clip(op), clip(f.Operation))
	case agent != f.AgentID:
		return fieldErr(field, "agent_id %q differs from the request's %q", clip(agent), clip(f.AgentID))
	case !sameNullable(subject, f.SubjectID):
		return fieldErr(field, "subject_id differs from the request's")
	}
	got, err := canon.Digest(raw)
	if err != nil {
		return fieldErr(field, "cannot be canonicalized: %s", err.Error())
	}
	if got != f.ActionDigest {
		return fieldErr(field, "does not match action_digest: request says %s, binding hashes to %s", f.ActionDigest, got)
	}
	return nil
}

// parseV1Optional reads the fields of AGT's ApprovalRequest model that
// build_webhook_request does not send today but may: they are recorded, and
// change nothing. approvebot never approves on timeout, whatever
// fail_closed_on_timeout says.
func parseV1Optional(s *Submission, m map[string]json.RawMessage) error {
	f := &s.Fields
	if raw, ok := m["requested_at"]; ok {
		v, err := asString(raw)
		if err != nil {
			return fieldErr("requested_at", "want a string (an ISO 8601 time)")
		}
		if err := s.checkTime("requested_at", v); err != nil {
			return err
		}
		f.RequestedAt = v
	}
	if raw, ok := m["fail_closed_on_timeout"]; ok {
		var b bool
		if (string(raw) != "true" && string(raw) != "false") || json.Unmarshal(raw, &b) != nil {
			return fieldErr("fail_closed_on_timeout", "want true or false, got %s", clip(string(raw)))
		}
		f.FailClosedOnTimeout = &b
	}
	if raw, ok := m["status"]; ok {
		v, err := asString(raw)
		if err != nil || v != string(approvebot.StatusPending) {
			return fieldErr("status", "a request's status can only be %q, got %s", approvebot.StatusPending, clip(string(raw)))
		}
		f.RequestStatus = v
	}
	return nil
}

// checkTime parses a time field and notes when it had no offset.
func (s *Submission) checkTime(key, v string) error {
	_, naive, err := ParseTime(v)
	if err != nil {
		return fieldErr(key, "%s", err.Error())
	}
	if naive {
		s.Naive = append(s.Naive, key)
	}
	return nil
}

// ExpiresAt is the schema 1.0 deadline the agent set.
func (s *Submission) ExpiresAt() (time.Time, error) {
	if s.Schema != approvebot.SchemaV1 {
		return time.Time{}, fmt.Errorf("a %s request carries no expires_at", s.Schema)
	}
	t, _, err := ParseTime(s.Fields.ExpiresAt)
	return t, err
}

// ParseTime reads Python's datetime.isoformat(): of an aware time
// ("2026-04-23T12:00:00.123456+00:00", no fraction when microseconds are
// zero), RFC 3339 generally, and of a naive time, without an offset
// ("2026-04-23T12:00:00.123456"), which AGT sends when its caller passed a
// naive datetime. A naive time is read as UTC, and naive says so.
func ParseTime(s string) (t time.Time, naive bool, err error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, false, nil
	}
	// The layout has no fraction, but Parse takes one after the seconds.
	if !strings.Contains(s, ",") {
		if t, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.UTC); err == nil {
			return t, true, nil
		}
	}
	return time.Time{}, false, fmt.Errorf("want an ISO 8601 time like 2026-04-23T12:00:00.123456+00:00 (without an offset it is read as UTC); got %q", clip(s))
}

func requiredString(m map[string]json.RawMessage, key string) (string, error) {
	raw, ok := m[key]
	if !ok {
		return "", fieldErr(key, "required")
	}
	v, err := asString(raw)
	if err != nil {
		return "", fieldErr(key, "want a string")
	}
	return v, nil
}

func nullableString(m map[string]json.RawMessage, key string) (*string, error) {
	raw, ok := m[key]
	if !ok {
		return nil, fieldErr(key, "required (null when there is none)")
	}
	if string(raw) == "null" {
		return nil, nil
	}
	v, err := asString(raw)
	if err != nil {
		return nil, fieldErr(key, "want a string or null")
	}
	return &v, nil
}

func asString(raw json.RawMessage) (string, error) {
	if !bytes.HasPrefix(raw, []byte(`"`)) {
		return "", fmt.Errorf("not a string")
	}
	if s, ok := plainString(raw); ok {
		return s, nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// plainString returns the value of raw when raw is exactly a JSON string
// of valid UTF-8 with no escapes: its text between the quotes, as
// encoding/json would decode it. Nearly every string agents send is one.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	text := raw[1 : len(raw)-1]
	ascii := true
	for _, c := range text {
		if c < 0x20 || c == '"' || c == '\\' {
			return "", false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(text) {
		return "", false
	}
	return string(text), true
}

// plainStrings returns the values of raw when raw is exactly a JSON array
// of plain strings (see plainString), as approvers reads them.
func plainStrings(raw []byte) ([]string, bool) {
	if len(raw) < 2 || raw[0] != '[' {
		return nil, false
	}
	// Plain strings hold no quote, so each element has two.
	list := make([]string, 0, bytes.Count(raw, []byte(`"`))/2)
	i := jsonlex.SkipSpace(raw, 1)
	if i < len(raw) && raw[i] == ']' {
		return list, i+1 == len(raw)
	}
	for i < len(raw) && raw[i] == '"' {
		end := bytes.IndexByte(raw[i+1:], '"')
		if end < 0 {
			return nil, false
		}
		end += i + 2
		s, ok := plainString(raw[i:end])
		if !ok {
			return nil, false
		}
		list = append(list, s)
		i = jsonlex.SkipSpace(raw, end)
		switch {
		case i < len(raw) && raw[i] == ',':
			i = jsonlex.SkipSpace(raw, i+1)
		case i+1 == len(raw) && raw[i] == ']':
			return list, true
		default:
			return nil, false
		}
	}
	return nil, false
}

func isObject(raw json.RawMessage) bool { return bytes.HasPrefix(raw, []byte("{")) }

func sameNullable(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// clip keeps echoed agent input short in error messages.
func clip(s string) string {
	const max = 80
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:max])) + "…"
}
