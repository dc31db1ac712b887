package store

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
)

// stateCases are requests whose state records decodePendingState should
// read itself (fast) or leave to encoding/json.
func stateCases() []struct {
	name string
	r    *approvebot.Request
	fast bool
} {
	paris := time.FixedZone("CET", 3600)
	posted := func(r *approvebot.Request) *approvebot.Request {
		for i := range r.Destinations {
			d := &r.Destinations[i]
			d.State, d.Shown = approvebot.DeliveryPosted, r.Version
			d.Ref = approvebot.MessageRef{Channel: d.Channel, ID: "1767225600.00012" + string(rune('0'+i))}
		}
		return r
	}
	with := func(f func(r *approvebot.Request)) *approvebot.Request {
		r := newRequest("req-1", t0.Add(time.Hour))
		f(r)
		return r
	}
	decided := func(r *approvebot.Request) {
		r.Status = approvebot.StatusApproved
		r.Entries = []approvebot.Entry{{Decision: approvebot.Allow, Approver: approvebot.Approver{Platform: chat, UserID: "U1"}}}
		r.Resolution = &approvebot.Resolution{Outcome: approvebot.Allow, Status: approvebot.StatusApproved, Approver: "U1", ResolvedAt: t0}
		r.Thread = []approvebot.Note{{Kind: approvebot.NoteOutcome, Text: "approved by U1", At: t0, Stage: -1}}
		r.Receipt = &approvebot.Receipt{AuditSeq: 9, AuditHead: "sha256:ab"}
		r.Assertion = "eyJhbGciOi"
	}
	return []struct {
		name string
		r    *approvebot.Request
		fast bool
	}{
		{"no destinations", with(func(r *approvebot.Request) { r.Destinations = nil }), true},
		{"one queued", with(func(r *approvebot.Request) { r.Destinations = r.Destinations[:1] }), true},
		{"two queued", with(func(r *approvebot.Request) {}), true},
		{"two posted", posted(with(func(r *approvebot.Request) { r.Version = 3 })), true},
		{"teams ref", with(func(r *approvebot.Request) {
			r.Destinations = r.Destinations[:1]
			r.Destinations[0].Platform, r.Destinations[0].State = "teams", approvebot.DeliveryPosted
			r.Destinations[0].Ref = approvebot.MessageRef{Channel: "19:abc@thread.tacv2", ID: "1767225600123", Conversation: "19:abc@thread.tacv2;messageid=1767225600123", ServiceURL: "https://smba.trafficmanager.net/emea/", Partial: true}
		}), true},
		{"failed, groups null and empty", with(func(r *approvebot.Request) {
			r.Destinations[0].State, r.Destinations[0].Error, r.Destinations[0].Groups = approvebot.DeliveryFailed, "channel_not_found", nil
			r.Destinations[1].Groups = []string{}
		}), true},
		{"later stage, replies, many groups", with(func(r *approvebot.Request) {
			r.Stage = 1
			r.Destinations[0].State = approvebot.DeliverySkipped
			r.Destinations[1].Stage, r.Destinations[1].State, r.Destinations[1].Replied = 1, approvebot.DeliveryWaiting, 3
			r.Destinations[1].Groups = []string{"ops", "finance", "sec"}
		}), true},
		{"reminded, nudge", with(func(r *approvebot.Request) {
			r.Reminded, r.Nudge = 2, t0.Add(90*time.Minute+123456789).In(paris)
		}), true},
		{"nudge only", with(func(r *approvebot.Request) { r.Nudge = t0.Add(time.Minute) }), true},
		{"deadline with offset and nanoseconds", with(func(r *approvebot.Request) { r.Deadline = t0.Add(7).In(paris) }), true},
		{"unicode", with(func(r *approvebot.Request) { r.Destinations[0].Channel = "général-✓" }), true},
		{"no status", with(func(r *approvebot.Request) { r.Status = "" }), true},
		{"large version", with(func(r *approvebot.Request) { r.Version = 1 << 63 }), false},
		{"escaped string", with(func(r *approvebot.Request) { r.Destinations[0].Error = `post "<C0A>": refused` }), false},
		{"thread", with(func(r *approvebot.Request) {
			r.Thread = []approvebot.Note{{Kind: approvebot.NoteStage, Text: "stage 1 opened", At: t0}}
		}), false},
		{"escalated", with(func(r *approvebot.Request) {
			r.Escalations = []approvebot.Escalated{{Step: 0, Stage: 0, Groups: []string{"sec"}, At: t0}}
		}), false},
		{"decided", posted(with(decided)), false},
		{"decided, no destinations", with(func(r *approvebot.Request) { decided(r); r.Destinations = nil }), false},
	}
}

// starts are the requests a state record is decoded into: a head alone,
// as refresh decodes into, and one whose state fields are already set,
// which Unmarshal keeps where the record lacks them.
func starts(head *approvebot.Request) map[string]func() *approvebot.Request {
	return map[string]func() *approvebot.Request{
		"head": func() *approvebot.Request { return headOf(head).request() },
		"state set": func() *approvebot.Request {
			r := headOf(head).request()
			r.Reminded, r.Nudge, r.Stage, r.Assertion = 5, t0, 4, "old"
			r.Entries = []approvebot.Entry{{Decision: approvebot.Deny}}
			return r
		},
		"destinations set": func() *approvebot.Request {
			r := headOf(head).request()
			r.Destinations = []approvebot.Destination{{Platform: "old", Error: "kept by Unmarshal", Replied: 9}}
			return r
		},
	}
}

func TestDecodePendingStateMatchesUnmarshal(t *testing.T) {
	for _, c := range stateCases() {
		t.Run(c.name, func(t *testing.T) {
			st, err := encodeState(c.r)
			if err != nil {
				t.Fatal(err)
			}
			if fast := decodePendingState(st, headOf(c.r).request()); fast != c.fast {
				t.Fatalf("read without encoding/json: %v, want %v, for %s", fast, c.fast, st)
			}
			for name, start := range starts(c.r) {
				want := start()
				if err := json.Unmarshal(st, want); err != nil {
					t.Fatal(err)
				}
				got := start()
				if err := decodeState([]byte(c.r.ID), st, got); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("into %s: decodeState gives\n%+v\nUnmarshal gives\n%+v\nfrom %s", name, got, want, st)
				}
			}
			// The request stored is the request read back, its times in
			// the zone JSON keeps (an offset, not a name).
			got := headOf(c.r).request()
			if err := decodeState([]byte(c.r.ID), st, got); err != nil {
				t.Fatal(err)
			}
			if !got.Deadline.Equal(c.r.Deadline) || !got.Nudge.Equal(c.r.Nudge) {
				t.Errorf("read back deadline %v nudge %v, stored %v %v", got.Deadline, got.Nudge, c.r.Deadline, c.r.Nudge)
			}
			got.Deadline, got.Nudge = c.r.Deadline, c.r.Nudge
			if c.fast && !reflect.DeepEqual(got, c.r) {
				t.Errorf("read back\n%+v\nstored\n%+v", got, c.r)
			}
		})
	}
}

// TestDecodePendingStateRefusesOtherForms checks that records of another
// form than encodeState's are left to encoding/json, errors included.
func TestDecodePendingStateRefusesOtherForms(t *testing.T) {
	s := pendingState(t)
	for name, v := range otherForms(s) {
		if v == s {
			t.Fatalf("%s: case does not change the record", name)
		}
		if decodePendingState([]byte(v), headOf(newRequest("req-1", t0)).request()) {
			t.Errorf("%s: read without encoding/json: %s", name, v)
		}
	}
}

func pendingState(t testing.TB) string {
	st, err := encodeState(newRequest("req-1", t0))
	if err != nil {
		t.Fatal(err)
	}
	return string(st)
}

// otherForms are variations of s, the state record of a pending request,
// that encodeState never writes.
func otherForms(s string) map[string]string {
	return map[string]string{
		"space":          strings.Replace(s, `"status":`, `"status": `, 1),
		"key case":       strings.Replace(s, `"status":`, `"Status":`, 1),
		"order":          `{"status":"pending","deadline":"2026-03-01T12:00:00Z","stage":0,"version":1}`,
		"null deadline":  `{"deadline":null,"status":"pending","stage":0,"version":1}`,
		"bad time":       `{"deadline":"2026-03-01 12:00:00","status":"pending","stage":0,"version":1}`,
		"float stage":    `{"deadline":"2026-03-01T12:00:00Z","status":"pending","stage":0.0,"version":1}`,
		"minus zero":     `{"deadline":"2026-03-01T12:00:00Z","status":"pending","stage":-0,"version":1}`,
		"leading zero":   `{"deadline":"2026-03-01T12:00:00Z","status":"pending","stage":01,"version":1}`,
		"negative ver":   `{"deadline":"2026-03-01T12:00:00Z","status":"pending","stage":0,"version":-1}`,
		"empty dests":    `{"deadline":"2026-03-01T12:00:00Z","status":"pending","stage":0,"destinations":[],"version":1}`,
		"unknown key":    strings.Replace(s, `"version":`, `"id":"x","version":`, 1),
		"partial false":  strings.Replace(s, `"id":""}`, `"id":"","partial":false}`, 1),
		"trailing":       s + " ",
		"truncated":      s[:len(s)-1],
		"invalid utf-8":  strings.Replace(s, `"C0A"`, "\"C0\xffA\"", 1),
		"control char":   strings.Replace(s, `"C0A"`, "\"C0\tA\"", 1),
		"escape":         strings.Replace(s, `"C0A"`, `"C0\u0041"`, 1),
		"status escaped": strings.Replace(s, `"pending"`, `"pend\u0069ng"`, 1),
	}
}

func FuzzDecodeStateMatchesUnmarshal(f *testing.F) {
	for _, c := range stateCases() {
		st, err := encodeState(c.r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(st)
	}
	for _, v := range otherForms(pendingState(f)) {
		f.Add([]byte(v))
	}
	f.Add([]byte(`{"deadline":"2026-03-01T12:00:00+01:00","status":"x","stage":-3,"version":0,"reminded":-1,"nudge":"0001-01-01T00:00:00Z"}`))
	head := newRequest("req-1", t0)
	f.Fuzz(func(t *testing.T, st []byte) {
		for name, start := range starts(head) {
			got := start()
			if !decodePendingState(st, got) {
				if !reflect.DeepEqual(got, start()) {
					t.Fatalf("into %s: refused record changed the request: %s", name, st)
				}
				continue
			}
			want := start()
			if err := json.Unmarshal(st, want); err != nil {
				t.Fatalf("into %s: read %s, which Unmarshal refuses: %v", name, st, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("into %s: from %s\ngot  %+v\nwant %+v", name, st, got, want)
			}
		}
	})
}
