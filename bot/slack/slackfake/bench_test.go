//go:build unix

package slackfake_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	goslack "github.com/slack-go/slack"

	"github.com/approvebot/approvebot/bot/slack/slackfake"
)

// pendingPost is chat.postMessage as approvebot sends it for a pending
// request: the form slack-go builds from the rendering in
// ../testdata/pending.golden.json.
func pendingPost(tb testing.TB) url.Values {
	tb.Helper()
	raw, err := os.ReadFile("../testdata/pending.golden.json")
	if err != nil {
		tb.Fatal(err)
	}
	var golden struct {
		Text   string         `json:"text"`
		Blocks goslack.Blocks `json:"blocks"`
	}
	if err := json.Unmarshal(raw, &golden); err != nil {
		tb.Fatal(err)
	}
	_, form, err := goslack.UnsafeApplyMsgOptions(token, "C0APPROVALS", "",
		goslack.MsgOptionText(golden.Text, false), goslack.MsgOptionDisableMarkdown(), goslack.MsgOptionBlocks(golden.Blocks.BlockSet...))
	if err != nil {
		tb.Fatal(err)
	}
	// slack-go marshals the blocks into the form as it sends it.
	blocks, err := json.Marshal(golden.Blocks.BlockSet)
	if err != nil || len(golden.Blocks.BlockSet) == 0 {
		tb.Fatalf("blocks of the pending message: %d, %v", len(golden.Blocks.BlockSet), err)
	}
	form.Set("blocks", string(blocks))
	return form
}

// cpuTime is the CPU this process has used so far, user and system.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU used per operation since start: unlike ns/op it
// does not grow while other work on the machine holds the cores.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkPostMessage times one chat.postMessage of a pending request's
// message over loopback HTTP, client included.
func BenchmarkPostMessage(b *testing.B) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	benchPosts(b, func(f *slackfake.Fake, body string) []byte {
		resp, err := client.Post(f.URL()+"chat.postMessage", "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return out
	})
}

// BenchmarkPostMessageHandler times the fake's own work for the same post,
// without the network or the client: what it takes from the cores it
// shares with a server under measurement.
func BenchmarkPostMessageHandler(b *testing.B) {
	benchPosts(b, func(f *slackfake.Fake, body string) []byte {
		req := httptest.NewRequest(http.MethodPost, "/api/chat.postMessage", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		slackfake.Handler(f).ServeHTTP(w, req)
		return w.Body.Bytes()
	})
}

// benchPosts times post, which sends body to f and returns the answer, with
// the fake's block checks on and off, and checks every post was taken.
func benchPosts(b *testing.B, post func(f *slackfake.Fake, body string) []byte) {
	for _, mode := range []struct {
		name string
		lean bool
	}{{"checked", false}, {"lean", true}} {
		b.Run(mode.name, func(b *testing.B) {
			f := slackfake.New(token)
			defer f.Close()
			f.SetBlockChecks(!mode.lean)
			body := pendingPost(b).Encode()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for range b.N {
				if out := post(f, body); !bytes.Contains(out, []byte(`"ok":true`)) {
					b.Fatalf("post refused: %s", out)
				}
			}
			b.StopTimer()
			reportCPU(b, cpu0)
			if got := f.Posts("C0APPROVALS"); got != b.N {
				b.Fatalf("%d posts recorded, want %d", got, b.N)
			}
		})
	}
}
