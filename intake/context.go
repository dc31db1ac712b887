package intake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/approvebot/approvebot"
)

// Display limits for what an agent adds for approvers: enough to judge a
// request, not enough to flood a chat message (Slack and Teams both cap
// message size).
const (
	MaxContextFields = 40
	MaxValueRunes    = 500
	maxLabelRunes    = 100
)

// ContextFields flattens a request's context object, and the parameters of
// its action binding, into labelled values for approvers. Nested objects
// become dotted labels ("destination.account"), binding parameters are
// labelled "parameters.<name>", strings are shown as they are and anything
// else as compact JSON. Context comes first, then parameters, each sorted by
// label. At most MaxContextFields are returned; when more exist the last
// one says how many were left out. Input that is not a JSON object is shown
// as a single value rather than dropped, so approvers still see it.
func ContextFields(ctx json.RawMessage, binding json.RawMessage) []approvebot.Field {
	var out []approvebot.Field
	if len(bytes.TrimSpace(ctx)) > 0 {
		out = append(out, flattenTop("", ctx)...)
	}
	if len(bytes.TrimSpace(binding)) > 0 {
		var b struct {
			Parameters json.RawMessage `json:"parameters"`
		}
		if json.Unmarshal(binding, &b) == nil && len(b.Parameters) > 0 && string(b.Parameters) != "null" {
			out = append(out, flattenTop("parameters", b.Parameters)...)
		}
	}
	if len(out) > MaxContextFields {
		hidden := len(out) - (MaxContextFields - 1)
		out = append(out[:MaxContextFields-1], approvebot.Field{
			Label: "…",
			Value: fmt.Sprintf("%d more fields not shown", hidden),
		})
	}
	return out
}

func flattenTop(prefix string, raw json.RawMessage) []approvebot.Field {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		label := prefix
		if label == "" {
			label = "context"
		}
		return []approvebot.Field{{Label: label, Value: truncate(string(raw), MaxValueRunes)}}
	}
	var out []approvebot.Field
	flatten(prefix, v, &out)
	// Labels can collide ({"a.b":1,"a":{"b":2}}), so the value breaks ties
	// and the order never depends on map iteration.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Label != out[j].Label {
			return out[i].Label < out[j].Label
		}
		return out[i].Value < out[j].Value
	})
	return out
}

func flatten(label string, v any, out *[]approvebot.Field) {
	if obj, ok := v.(map[string]any); ok && (len(obj) > 0 || label == "") {
		for k, sub := range obj {
			l := k
			if label != "" {
				l = label + "." + k
			}
			flatten(l, sub, out)
		}
		return
	}
	if label == "" {
		label = "context"
	}
	*out = append(*out, approvebot.Field{Label: truncate(label, maxLabelRunes), Value: render(v)})
}

func render(v any) string {
	if s, ok := v.(string); ok {
		return truncate(s, MaxValueRunes)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // renderers escape; here "<" must stay "<"
	if err := enc.Encode(v); err != nil {
		return "(unreadable)"
	}
	return truncate(strings.TrimSuffix(buf.String(), "\n"), MaxValueRunes)
}

// truncate keeps at most n runes, the last being "…" when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
