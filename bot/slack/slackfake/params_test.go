package slackfake

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/approvebot/approvebot/bot/jsonhttp"
)

// FuzzScanParams holds scanParams to url.ParseQuery, which Request.ParseForm
// uses: a body scanned is one ParseQuery takes without error, with the same
// values for every key scanned and, decoded later, the same form; a body
// not scanned is one ParseQuery refuses, or one with too many parameters to
// scan, which the fake then hands to ParseQuery itself.
func FuzzScanParams(f *testing.F) {
	for _, seed := range []string{
		"", "&", "=", "a", "token=x&channel=C1&text=hi&blocks=%5B%5D",
		"text=a+b%2Bc%e2%82%ac&text=second&blocks=&blocks=x",
		"chann%65l=C1&%74ext=hi&bl%6fcks=%5B&=v&k=",
		"text=100%", "text=%4", "text=%zz", "a=1;b=2", "a%3Bb=1", "text=a%3D%26b=c",
		strings.Repeat("x=1&", maxScannedParams) + "text=many",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		want, err := url.ParseQuery(body)
		p, ok := scanParams([]byte(body))
		if !ok {
			if err == nil && strings.Count(body, "&") < maxScannedParams {
				t.Fatalf("%q not scanned, yet ParseQuery takes it: %v", body, want)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q scanned, yet ParseQuery refuses it: %v", body, err)
		}
		for _, k := range scannedKeys {
			if got := p.Get(k); got != want.Get(k) {
				t.Fatalf("%q: %s = %q, want %q", body, k, got, want.Get(k))
			}
		}
		if p.blocksSent != (want.Get("blocks") != "") {
			t.Fatalf("%q: blocks sent %v, want %q", body, p.blocksSent, want.Get("blocks"))
		}
		if p.values != nil {
			t.Fatalf("%q: decoded before anything read it", body)
		}
		if got := p.all(); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: decoded %v, want %v", body, got, want)
		}
		blocks, actionable := p.takenBlocks()
		wantBlocks, wantActionable, _ := takeBlocks(want.Get("blocks"))
		if !bytes.Equal(blocks, wantBlocks) || actionable != wantActionable {
			t.Fatalf("%q: blocks %q (actions %v), want %q (%v)", body, blocks, actionable, wantBlocks, wantActionable)
		}
	})
}

// FuzzPostedAnswer holds the answer to a message posted, replied or updated
// to what encoding/json writes for the map it stands for.
func FuzzPostedAnswer(f *testing.F) {
	for _, seed := range []string{"", "hi", `a "quoted" \ text`, "<b>&amp;</b>", "ü € 😀", "\x00\x1f\x7f", "\xff\xfe bad", "\u2028\u2029", "tab\tnew\nline\r"} {
		f.Add(seed, "C1", "1700000000.000001")
	}
	f.Fuzz(func(t *testing.T, text, channel, ts string) {
		for _, a := range []posted{
			{channel: channel, ts: ts, text: text},
			{channel: channel, ts: ts, threadTS: ts + "0", text: text},
			{update: true, channel: channel, ts: ts, text: text},
		} {
			var m map[string]any
			switch {
			case a.update:
				m = map[string]any{"channel": a.channel, "ts": a.ts, "text": a.text}
			case a.threadTS != "":
				m = map[string]any{"channel": a.channel, "ts": a.ts,
					"message": map[string]any{"type": "message", "text": a.text, "ts": a.ts, "thread_ts": a.threadTS, "bot_id": "B0FAKEBOT"}}
			default:
				m = map[string]any{"channel": a.channel, "ts": a.ts,
					"message": map[string]any{"type": "message", "text": a.text, "ts": a.ts, "bot_id": "B0FAKEBOT"}}
			}
			m["ok"] = true
			want, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.appendJSON(nil); !bytes.Equal(got, want) {
				t.Fatalf("answer %s, want %s", got, want)
			}
		}
	})
}

// BenchmarkPostedAnswer compares writing a post's answer as encoding/json
// writes its map with building that map and encoding it.
func BenchmarkPostedAnswer(b *testing.B) {
	a := posted{channel: "C0APPROVALS", ts: "1700000000.000001", text: "Approval needed: deploy api to production (req ar_0123456789abcdef0123456789abcdef)"}
	b.Run("map", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			m := map[string]any{"channel": a.channel, "ts": a.ts,
				"message": map[string]any{"type": "message", "text": a.text, "ts": a.ts, "bot_id": "B0FAKEBOT"}}
			m["ok"] = true
			jsonhttp.Write(httptest.NewRecorder(), http.StatusOK, m)
		}
	})
	b.Run("encoded", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			jsonhttp.WriteEncoded(httptest.NewRecorder(), http.StatusOK, a.appendJSON(make([]byte, 0, 256)))
		}
	})
}
