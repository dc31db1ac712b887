package store

import (
	"time"
	"unicode/utf8"

	"github.com/approvebot/approvebot"
)

// decodePendingState reads st into r without reflection when it is the
// record encodeState writes for a request still waiting on its first
// stage: the state fields in struct order, compact, its strings free of
// escapes, with no entries, resolution, thread, escalations, receipt or
// assertion. That is the record Get, Refresh and Deliver read most. It
// sets exactly the fields json.Unmarshal would, to the values it would,
// and reports whether it did; on false r is untouched and the caller
// decodes st with encoding/json, whose results and errors stay the rule.
func decodePendingState(st []byte, r *approvebot.Request) bool {
	d := stateReader{b: st}
	var (
		deadline, nudge       time.Time
		status                string
		stage, reminded       int
		version               uint64
		dests                 []approvebot.Destination
		hasNudge, hasReminded bool
		ok                    bool
	)
	if !d.lit(`{"deadline":`) || !d.readTime(&deadline) ||
		!d.lit(`,"status":`) {
		return false
	}
	if status, ok = d.text(); !ok || !d.lit(`,"stage":`) {
		return false
	}
	if stage, ok = d.readInt(); !ok {
		return false
	}
	if d.lit(`,"destinations":[`) {
		// Unmarshal decodes into the elements of a slice already there,
		// keeping what the input lacks; that case is left to it.
		if cap(r.Destinations) != 0 {
			return false
		}
		for {
			var dst approvebot.Destination
			if !d.destination(&dst) {
				return false
			}
			dests = append(dests, dst)
			if d.lit(`]`) {
				break
			}
			if !d.lit(`,`) {
				return false
			}
		}
	}
	if !d.lit(`,"version":`) {
		return false
	}
	if version, ok = d.readUint(); !ok {
		return false
	}
	if d.lit(`,"reminded":`) {
		if reminded, ok = d.readInt(); !ok {
			return false
		}
		hasReminded = true
	}
	if d.lit(`,"nudge":`) {
		if !d.readTime(&nudge) {
			return false
		}
		hasNudge = true
	}
	if !d.lit(`}`) || d.i != len(d.b) {
		return false
	}
	r.Deadline, r.Status, r.Stage, r.Version = deadline, approvebot.Status(status), stage, version
	if dests != nil {
		r.Destinations = dests
	}
	if hasReminded {
		r.Reminded = reminded
	}
	if hasNudge {
		r.Nudge = nudge
	}
	return true
}

// stateReader walks a state record for decodePendingState; every method
// reports false on anything but the exact form expected.
type stateReader struct {
	b []byte
	i int
}

// lit consumes s if the record continues with it.
func (d *stateReader) lit(s string) bool {
	if len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		return false
	}
	d.i += len(s)
	return true
}

// quoted consumes a JSON string without escapes and returns it with its
// quotes. Control characters (which make the text invalid) and invalid
// UTF-8 (which Unmarshal replaces with U+FFFD) are refused too.
func (d *stateReader) quoted() ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start, ascii := d.i, true
	for j := start + 1; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			if !ascii && !utf8.Valid(d.b[start+1:j]) {
				return nil, false
			}
			d.i = j + 1
			return d.b[start : j+1], true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// text consumes a string. The values most records repeat are returned as
// constants rather than copied.
func (d *stateReader) text() (string, bool) {
	q, ok := d.quoted()
	if !ok {
		return "", false
	}
	switch s := q[1 : len(q)-1]; string(s) {
	case "":
		return "", true
	case string(approvebot.StatusPending):
		return string(approvebot.StatusPending), true
	case approvebot.DeliveryWaiting:
		return approvebot.DeliveryWaiting, true
	case approvebot.DeliveryQueued:
		return approvebot.DeliveryQueued, true
	case approvebot.DeliveryPosted:
		return approvebot.DeliveryPosted, true
	case approvebot.DeliveryFailed:
		return approvebot.DeliveryFailed, true
	case approvebot.DeliverySkipped:
		return approvebot.DeliverySkipped, true
	case "slack":
		return "slack", true
	case "teams":
		return "teams", true
	default:
		return string(s), true
	}
}

// readTime consumes a string and reads it as time.Time's UnmarshalJSON does,
// which is what Unmarshal calls with the same bytes.
func (d *stateReader) readTime(t *time.Time) bool {
	q, ok := d.quoted()
	return ok && t.UnmarshalJSON(q) == nil
}

// maxDigits keeps every number read within int64 and uint64; longer
// ones, which no request reaches, are left to Unmarshal.
const maxDigits = 18

// readUint consumes a number as encoding/json writes an unsigned integer.
func (d *stateReader) readUint() (uint64, bool) {
	j := d.i
	var n uint64
	for j < len(d.b) && '0' <= d.b[j] && d.b[j] <= '9' {
		n = n*10 + uint64(d.b[j]-'0')
		j++
	}
	digits := j - d.i
	if digits == 0 || digits > maxDigits || (digits > 1 && d.b[d.i] == '0') {
		return 0, false
	}
	d.i = j
	return n, true
}

// readInt consumes a number as encoding/json writes a signed integer.
func (d *stateReader) readInt() (int, bool) {
	neg := d.lit(`-`)
	n, ok := d.readUint()
	if !ok || (neg && n == 0) {
		return 0, false
	}
	if neg {
		return -int(n), true
	}
	return int(n), true
}

// destination consumes one approvebot.Destination as encoding/json writes
// it.
func (d *stateReader) destination(dst *approvebot.Destination) bool {
	var ok bool
	if !d.lit(`{"platform":`) {
		return false
	}
	if dst.Platform, ok = d.text(); !ok || !d.lit(`,"channel":`) {
		return false
	}
	if dst.Channel, ok = d.text(); !ok || !d.lit(`,"stage":`) {
		return false
	}
	if dst.Stage, ok = d.readInt(); !ok || !d.lit(`,"groups":`) {
		return false
	}
	if !d.lit(`null`) {
		if !d.lit(`[`) {
			return false
		}
		dst.Groups = []string{}
		if !d.lit(`]`) {
			for {
				g, ok := d.text()
				if !ok {
					return false
				}
				dst.Groups = append(dst.Groups, g)
				if d.lit(`]`) {
					break
				}
				if !d.lit(`,`) {
					return false
				}
			}
		}
	}
	if !d.lit(`,"state":`) {
		return false
	}
	if dst.State, ok = d.text(); !ok || !d.lit(`,"ref":`) || !d.ref(&dst.Ref) {
		return false
	}
	if d.lit(`,"error":`) {
		if dst.Error, ok = d.text(); !ok {
			return false
		}
	}
	if d.lit(`,"shown":`) {
		if dst.Shown, ok = d.readUint(); !ok {
			return false
		}
	}
	if d.lit(`,"replied":`) {
		if dst.Replied, ok = d.readInt(); !ok {
			return false
		}
	}
	return d.lit(`}`)
}

// ref consumes one approvebot.MessageRef as encoding/json writes it.
func (d *stateReader) ref(ref *approvebot.MessageRef) bool {
	var ok bool
	if !d.lit(`{"channel":`) {
		return false
	}
	if ref.Channel, ok = d.text(); !ok || !d.lit(`,"id":`) {
		return false
	}
	if ref.ID, ok = d.text(); !ok {
		return false
	}
	if d.lit(`,"conversation":`) {
		if ref.Conversation, ok = d.text(); !ok {
			return false
		}
	}
	if d.lit(`,"service_url":`) {
		if ref.ServiceURL, ok = d.text(); !ok {
			return false
		}
	}
	if d.lit(`,"partial":true`) {
		ref.Partial = true
	}
	return d.lit(`}`)
}
