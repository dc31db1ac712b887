// Package ttlcache owns the adapters' short-lived memory of what a chat
// platform said (who a user is, who is in a group): answers reused for a
// fixed time so a burst of clicks does not call the platform once per click.
package ttlcache

import (
	"sync"
	"time"
)

// sweepAt is the size from which a Put first drops the stale entries, so a
// cache of many distinct keys cannot grow without bound.
const sweepAt = 10000

// Cache maps keys to values that count for ttl after they were put. It is
// safe for concurrent use. A cache with ttl <= 0 keeps nothing.
type Cache[K comparable, V any] struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[K]entry[V]
}

type entry[V any] struct {
	v  V
	at time.Time // when it was put, on now's clock
}

// New makes a cache whose entries count for ttl on the clock now (passed in
// so tests move time instead of sleeping).
func New[K comparable, V any](ttl time.Duration, now func() time.Time) *Cache[K, V] {
	return &Cache[K, V]{ttl: ttl, now: now, entries: map[K]entry[V]{}}
}

// Get returns the value put for key, unless it is older than the ttl. An
// entry stamped after now (a clock set back) counts as stale too: how old it
// is cannot be told.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !c.fresh(e, now) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put remembers v for key from now on.
func (c *Cache[K, V]) Put(key K, v V) {
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= sweepAt {
		for k, e := range c.entries {
			if !c.fresh(e, now) {
				delete(c.entries, k)
			}
		}
	}
	c.entries[key] = entry[V]{v: v, at: now}
}

// size is how many entries are kept, stale ones included until a sweep:
// the tests check with it that sweeps bound the memory.
func (c *Cache[K, V]) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *Cache[K, V]) fresh(e entry[V], now time.Time) bool {
	return !now.Before(e.at) && now.Sub(e.at) < c.ttl
}
