package ttlcache

import (
	"fmt"
	"testing"
	"time"
)

// clock is a time that only the test moves.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestGetWithinTTL(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	c := New[string, int](time.Minute, clk.now)
	if _, ok := c.Get("a"); ok {
		t.Fatal("empty cache returned a value")
	}
	c.Put("a", 1)
	steps := []struct {
		move time.Duration
		want bool
	}{
		{0, true},
		{59 * time.Second, true},
		{time.Second, false}, // exactly ttl old: stale
	}
	for _, s := range steps {
		clk.t = clk.t.Add(s.move)
		v, ok := c.Get("a")
		if ok != s.want || (ok && v != 1) {
			t.Fatalf("after moving %v: Get = %d, %v; want 1, %v", s.move, v, ok, s.want)
		}
	}
	c.Put("a", 2)
	if v, ok := c.Get("a"); !ok || v != 2 {
		t.Fatalf("after a second Put: Get = %d, %v; want 2, true", v, ok)
	}
}

func TestClockSetBack(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	c := New[string, string](time.Minute, clk.now)
	c.Put("a", "x")
	clk.t = clk.t.Add(-time.Second)
	if _, ok := c.Get("a"); ok {
		t.Fatal("an entry stamped in the future was returned")
	}
}

func TestNoTTLKeepsNothing(t *testing.T) {
	for _, ttl := range []time.Duration{0, -time.Second} {
		clk := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
		c := New[string, int](ttl, clk.now)
		c.Put("a", 1)
		if _, ok := c.Get("a"); ok || c.size() != 0 {
			t.Errorf("ttl %v: Get found a value (len %d), want nothing kept", ttl, c.size())
		}
	}
}

func TestSweepDropsStaleEntries(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	c := New[string, int](time.Minute, clk.now)
	for i := range sweepAt {
		c.Put(fmt.Sprint("old", i), i)
	}
	clk.t = clk.t.Add(30 * time.Second)
	c.Put("young", 1) // reaches sweepAt+1 entries; none stale yet
	if c.size() != sweepAt+1 {
		t.Fatalf("len %d after a put with nothing stale, want %d", c.size(), sweepAt+1)
	}
	clk.t = clk.t.Add(30 * time.Second) // the old ones are a minute old, young half that
	c.Put("new", 2)
	if c.size() != 2 {
		t.Fatalf("len %d after the sweep, want 2 (young and new)", c.size())
	}
	for _, k := range []string{"young", "new"} {
		if _, ok := c.Get(k); !ok {
			t.Errorf("%s was dropped by the sweep", k)
		}
	}
}
