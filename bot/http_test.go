package bot

import (
	"math"
	"strconv"
	"testing"
	"time"
)

func TestParsePrefer(t *testing.T) {
	for _, tt := range []struct {
		in    []string
		wait  time.Duration
		async bool
	}{
		{nil, 0, false},
		{[]string{"wait=30"}, 30 * time.Second, false},
		{[]string{"WAIT = 30"}, 30 * time.Second, false},
		{[]string{`wait="45"`}, 45 * time.Second, false},
		{[]string{"wait=0"}, minPreferWait, false},
		{[]string{"wait=00000"}, minPreferWait, false},
		{[]string{"wait=86400"}, maxPreferWait, false},
		{[]string{"wait=86401"}, maxPreferWait, false},
		{[]string{"wait=18446744074"}, maxPreferWait, false},                                     // × 1e9 ns wraps uint64 to 290 ms
		{[]string{"wait=9223372037"}, maxPreferWait, false},                                      // × 1e9 ns wraps int64 negative
		{[]string{"wait=" + strconv.FormatUint(math.MaxUint64, 10) + "0"}, maxPreferWait, false}, // beyond uint64
		{[]string{"wait=-5"}, 0, false},
		{[]string{"wait=+5"}, 0, false},
		{[]string{"wait=5s"}, 0, false},
		{[]string{"wait=1.5"}, 0, false},
		{[]string{"wait=0x10"}, 0, false},
		{[]string{"wait=1_000"}, 0, false},
		{[]string{"wait="}, 0, false},
		{[]string{"wait"}, 0, false},
		{[]string{`wait="`}, 0, false},
		{[]string{"wait=10; foo=bar"}, 10 * time.Second, false},
		{[]string{"respond-async, wait=100"}, 100 * time.Second, true},
		{[]string{"wait=100", "wait=20", "wait=x"}, 20 * time.Second, false},
		{[]string{"Respond-Async"}, 0, true},
		{[]string{"respond-async;x=1"}, 0, true},
		{[]string{"handling=strict"}, 0, false},
	} {
		got := parsePrefer(tt.in)
		if got.wait != tt.wait || got.async != tt.async {
			t.Errorf("parsePrefer(%q) = %+v, want wait %v async %v", tt.in, got, tt.wait, tt.async)
		}
	}
}

func FuzzParsePrefer(f *testing.F) {
	for _, s := range []string{"wait=30", "respond-async, wait=0", "wait=18446744074", "wait=-1", `wait="12"; x`, "wait=99999999999999999999999", "wait=", ",,;=\""} {
		f.Add(s, "")
	}
	f.Add("wait=5", "wait=9223372037")
	f.Fuzz(func(t *testing.T, a, b string) {
		p := parsePrefer([]string{a, b})
		// Either no wait, or one within bounds: never a wrapped value.
		if p.wait != 0 && (p.wait < minPreferWait || p.wait > maxPreferWait || p.wait%time.Second != 0) {
			t.Fatalf("parsePrefer(%q, %q) wait %v", a, b, p.wait)
		}
	})
}
