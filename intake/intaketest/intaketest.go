// Package intaketest builds request bodies byte for byte as AGT's Python
// handlers post them, for tests anywhere in approvebot: json.dumps with its
// default ", " and ": " separators and ASCII escaping, datetime.isoformat()
// timestamps with "+00:00", and null for absent optional fields.
package intaketest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/approvebot/approvebot/canon"
)

// KV is one key of a JSON object; a slice of them keeps Python's insertion
// order, which a Go map would lose.
type KV struct {
	Key   string
	Value any
}

// Object is a JSON object in key order.
type Object []KV

// V1 describes a schema 1.0 request. Zero strings take the defaults shown;
// nil SubjectID and TargetResource are sent as null.
type V1 struct {
	ApprovalRequestID    string // default: random "ar_" + 32 hex
	PolicyDecisionID     string // default: random "pd_" + 32 hex
	AgentID              string // default "agent-123"
	SubjectID            *string
	Operation            string // default "tool.invoke"
	TargetResource       *string
	PolicyVersion        string    // default "2026.06.11"
	ApprovalChainID      string    // default "high-risk-tools"
	ApprovalChainVersion string    // default "3"
	ExpiresAt            time.Time // default: ten minutes from now

	// The action the approval is bound to; action_digest is its digest.
	ToolName          string // default "transfer_funds"
	ToolSchemaVersion string // default "1"
	Parameters        Object // default: amount 5000, destination ACC-789
	// IncludeBinding adds the binding itself as "action_binding" (AGT does
	// not send it; other clients may).
	IncludeBinding bool
	// Context, when set, is sent as "context".
	Context Object
	// NaiveExpiry sends expires_at as isoformat() of a naive datetime: the
	// same wall time in UTC, without an offset.
	NaiveExpiry bool
	// Extra is sent after every other key, e.g. the ApprovalRequest model
	// fields requested_at, fail_closed_on_timeout and status.
	Extra Object
}

// Str returns a pointer to s, for V1's nullable fields.
func Str(s string) *string { return &s }

// RandomID returns prefix + "_" + 32 lowercase hex digits, as Python's
// uuid4().hex makes them.
func RandomID(prefix string) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return prefix + "_" + hex.EncodeToString(b[:])
}

// Isoformat formats t as Python's aware datetime.isoformat() in UTC: six
// fraction digits, none at all when the microseconds are zero.
func Isoformat(t time.Time) string {
	t = t.UTC().Truncate(time.Microsecond)
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04:05+00:00")
	}
	return t.Format("2006-01-02T15:04:05.000000+00:00")
}

// Binding returns the action binding o describes, in AGT's key order.
func (o V1) Binding() Object {
	o = o.withDefaults()
	return Object{
		{"schema_version", "1.0"},
		{"operation", o.Operation},
		{"agent_id", o.AgentID},
		{"subject_id", o.SubjectID},
		{"target", Object{
			{"tool_name", o.ToolName},
			{"tool_schema_version", o.ToolSchemaVersion},
			{"resource", o.TargetResource},
		}},
		{"parameters", o.Parameters},
	}
}

func (o V1) withDefaults() V1 {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.ApprovalRequestID, RandomID("ar"))
	def(&o.PolicyDecisionID, RandomID("pd"))
	def(&o.AgentID, "agent-123")
	def(&o.Operation, "tool.invoke")
	def(&o.PolicyVersion, "2026.06.11")
	def(&o.ApprovalChainID, "high-risk-tools")
	def(&o.ApprovalChainVersion, "3")
	def(&o.ToolName, "transfer_funds")
	def(&o.ToolSchemaVersion, "1")
	if o.ExpiresAt.IsZero() {
		o.ExpiresAt = time.Now().Add(10 * time.Minute)
	}
	if o.Parameters == nil {
		o.Parameters = Object{{"amount", 5000}, {"destination", "ACC-789"}}
	}
	return o
}

// V1Body returns a schema 1.0 body as VersionedWebhookApproval posts it,
// with a correct input_digest and action_digest, and the body decoded as a
// map so tests can read the values it carries.
func V1Body(o V1) (body []byte, fields map[string]any) {
	o = o.withDefaults()
	binding := o.Binding()
	expires := Isoformat(o.ExpiresAt)
	if o.NaiveExpiry {
		expires = strings.TrimSuffix(expires, "+00:00")
	}
	actionDigest, err := canon.Digest(Dumps(binding))
	if err != nil {
		panic(fmt.Sprintf("intaketest: action binding: %v", err))
	}
	presented := Object{
		{"approval_request_id", o.ApprovalRequestID},
		{"policy_decision_id", o.PolicyDecisionID},
		{"action_digest", actionDigest},
		{"agent_id", o.AgentID},
		{"subject_id", o.SubjectID},
		{"operation", o.Operation},
		{"target_resource", o.TargetResource},
		{"policy_version", o.PolicyVersion},
		{"approval_chain_id", o.ApprovalChainID},
		{"approval_chain_version", o.ApprovalChainVersion},
		{"expires_at", expires},
	}
	inputDigest, err := canon.Digest(Dumps(presented))
	if err != nil {
		panic(fmt.Sprintf("intaketest: presented fields: %v", err))
	}
	payload := Object{{"schema_version", "1.0"}, {"type", "approval_request"}, {"input_digest", inputDigest}}
	payload = append(payload, presented...)
	if o.Context != nil {
		payload = append(payload, KV{"context", o.Context})
	}
	if o.IncludeBinding {
		payload = append(payload, KV{"action_binding", binding})
	}
	payload = append(payload, o.Extra...)
	return decoded(Dumps(payload))
}

// Legacy describes a WebhookApproval body. Zero values take the tutorial's.
type Legacy struct {
	RuleName    string    // default "approve-large-transfer"
	PolicyName  string    // default "financial-approvals"
	AgentID     string    // default "payments-agent"
	Action      string    // default "transfer"
	Approvers   []string  // default treasury-ops, compliance; use []string{} for none
	RequestedAt time.Time // default now
	Context     Object    // sent as "context" when set
}

// LegacyBody returns a legacy body as WebhookApproval posts it.
func LegacyBody(o Legacy) (body []byte, fields map[string]any) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.RuleName, "approve-large-transfer")
	def(&o.PolicyName, "financial-approvals")
	def(&o.AgentID, "payments-agent")
	def(&o.Action, "transfer")
	if o.Approvers == nil {
		o.Approvers = []string{"treasury-ops", "compliance"}
	}
	if o.RequestedAt.IsZero() {
		o.RequestedAt = time.Now()
	}
	approvers := make([]any, len(o.Approvers))
	for i, a := range o.Approvers {
		approvers[i] = a
	}
	payload := Object{
		{"type", "approval_request"},
		{"rule_name", o.RuleName},
		{"policy_name", o.PolicyName},
		{"agent_id", o.AgentID},
		{"action", o.Action},
		{"approvers", approvers},
		{"requested_at", Isoformat(o.RequestedAt)},
	}
	if o.Context != nil {
		payload = append(payload, KV{"context", o.Context})
	}
	return decoded(Dumps(payload))
}

func decoded(body []byte) ([]byte, map[string]any) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		panic(fmt.Sprintf("intaketest: built an unreadable body: %v", err))
	}
	return body, m
}

// Dumps encodes v as Python's json.dumps(v) does with default arguments.
// It takes Object, []any, string, *string, bool, int, int64, float64,
// json.RawMessage (written as is) and nil.
func Dumps(v any) []byte {
	var b strings.Builder
	dump(&b, v)
	return []byte(b.String())
}

func dump(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case *string:
		if v == nil {
			b.WriteString("null")
		} else {
			pyString(b, *v)
		}
	case string:
		pyString(b, v)
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case int:
		b.WriteString(strconv.Itoa(v))
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case float64:
		b.WriteString(pyFloat(v))
	case json.RawMessage:
		// JSON text sent as is: numbers as a client wrote them ("1e6").
		b.Write(v)
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			dump(b, e)
		}
		b.WriteByte(']')
	case []string:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			pyString(b, e)
		}
		b.WriteByte(']')
	case Object:
		b.WriteByte('{')
		for i, kv := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			pyString(b, kv.Key)
			b.WriteString(": ")
			dump(b, kv.Value)
		}
		b.WriteByte('}')
	default:
		panic(fmt.Sprintf("intaketest: Dumps cannot encode %T", v))
	}
}

// pyString escapes as json.dumps(ensure_ascii=True): short escapes for
// quote, backslash and \b\f\n\r\t, \uXXXX (surrogate pairs above U+FFFF)
// for everything else outside printable ASCII.
func pyString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			switch {
			case r >= 0x20 && r < 0x7f:
				b.WriteRune(r)
			case r > 0xffff:
				hi, lo := utf16.EncodeRune(r)
				fmt.Fprintf(b, `\u%04x\u%04x`, hi, lo)
			default:
				fmt.Fprintf(b, `\u%04x`, r)
			}
		}
	}
	b.WriteByte('"')
}

// pyFloat formats as Python's float repr: shortest round trip, exponent
// form below 1e-4 and from 1e16, always a ".0" on integral values.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // "-1.2345e+06"
	mant, expStr, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expStr)
	if f != 0 && (exp < -4 || exp >= 16) {
		sign := "+"
		if exp < 0 {
			sign, exp = "-", -exp
		}
		return fmt.Sprintf("%se%s%02d", mant, sign, exp)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}
