package store

import (
	"encoding/json"
	"hash/maphash"
	"maps"
	"slices"
	"sync"

	"github.com/approvebot/approvebot"
)

// headCache keeps decoded head records (what a request was created with),
// so that reading a request decodes only its small state record. A request
// is read several times in its life (posted, recorded, clicked, decided,
// polled), and its head, which holds the agent's fields, context and chain,
// is most of what decoding it costs.
//
// An entry is used only for a record whose bytes hash to what the entry was
// decoded from, so it can never give what the file does not hold: a record
// rewritten by a migration, removed by retention or replaced with the file
// simply misses. That also makes entries from transactions that later
// failed harmless. Every read gets its own deep copy: callers may change
// the request they are given.
type headCache struct {
	seed maphash.Seed

	mu    sync.Mutex
	m     map[string]cachedHead
	bytes int // sum of the cached records' sizes
	max   int
}

type cachedHead struct {
	sum  uint64
	size int
	head *recordHead
}

// headCacheBytes bounds the cache by the encoded size of what it holds; the
// decoded heads take about as much again. At 2 KB a request it keeps the
// 8,000 most recently read, which covers every request in flight at a
// burst's pace.
const headCacheBytes = 16 << 20

func newHeadCache(max int) *headCache {
	return &headCache{seed: maphash.MakeSeed(), m: map[string]cachedHead{}, max: max}
}

// decode returns the head encoded in v (the record of id), from the cache
// when it holds exactly these bytes. keep adds a decoded head to the cache:
// scans over every request pass false, so they do not push out the requests
// in flight.
func (c *headCache) decode(id string, v []byte, keep bool) (recordHead, error) {
	sum := maphash.Bytes(c.seed, v)
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && e.sum == sum && e.size == len(v) {
		return cloneHead(e.head), nil
	}
	var h recordHead
	if err := json.Unmarshal(v, &h); err != nil {
		return recordHead{}, err
	}
	if keep && len(v) <= c.max/16 {
		kept := cloneHead(&h)
		c.put(id, cachedHead{sum: sum, size: len(v), head: &kept})
	}
	return h, nil
}

func (c *headCache) put(id string, e cachedHead) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[id]; ok {
		c.bytes -= old.size
	}
	// Map order is random, so this evicts at random: no bookkeeping per
	// read, and a burst of new requests cannot all be pushed out at once.
	for k, old := range c.m {
		if c.bytes+e.size <= c.max {
			break
		}
		delete(c.m, k)
		c.bytes -= old.size
	}
	c.m[id] = e
	c.bytes += e.size
}

// forget drops id (retention removed it); a stale entry would only miss,
// but it would hold memory for nothing.
func (c *headCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[id]; ok {
		delete(c.m, id)
		c.bytes -= old.size
	}
}

// cloneHead is a deep copy of h: it shares no slice, map or pointer with it.
func cloneHead(h *recordHead) recordHead {
	out := *h
	out.Fields.Approvers = slices.Clone(h.Fields.Approvers)
	out.Fields.SubjectID = clonePtr(h.Fields.SubjectID)
	out.Fields.TargetResource = clonePtr(h.Fields.TargetResource)
	out.Fields.FailClosedOnTimeout = clonePtr(h.Fields.FailClosedOnTimeout)
	out.Context = slices.Clone(h.Context)
	out.ActionBinding = slices.Clone(h.ActionBinding)
	out.Chain = cloneChain(h.Chain)
	return out
}

func cloneChain(c approvebot.Chain) approvebot.Chain {
	out := c
	if c.Stages != nil {
		out.Stages = make([]approvebot.Stage, len(c.Stages))
		for i, s := range c.Stages {
			out.Stages[i] = approvebot.Stage{Groups: cloneGroups(s.Groups), Quorum: s.Quorum}
		}
	}
	out.Reminders = slices.Clone(c.Reminders)
	if c.Escalate != nil {
		out.Escalate = make([]approvebot.Escalation, len(c.Escalate))
		for i, e := range c.Escalate {
			out.Escalate[i] = approvebot.Escalation{After: e.After, Groups: cloneGroups(e.Groups)}
		}
	}
	return out
}

func cloneGroups(gs []approvebot.Group) []approvebot.Group {
	if gs == nil {
		return nil
	}
	out := make([]approvebot.Group, len(gs))
	for i, g := range gs {
		out[i] = approvebot.Group{Name: g.Name, Sides: maps.Clone(g.Sides)}
		for name, s := range out[i].Sides {
			// s is a copy of the struct, unexported fields included; only
			// its slices are shared.
			s.Channels, s.Users, s.Groups = slices.Clone(s.Channels), slices.Clone(s.Users), slices.Clone(s.Groups)
			out[i].Sides[name] = s
		}
	}
	return out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// setHead fills r's created-with fields from h.
func setHead(r *approvebot.Request, h recordHead) {
	r.ID, r.Schema, r.Caller, r.IdempotencyKey, r.Digest, r.BodyDigest = h.ID, h.Schema, h.Caller, h.IdempotencyKey, h.Digest, h.BodyDigest
	r.Fields, r.Context, r.ActionBinding, r.Chain, r.CreatedAt = h.Fields, h.Context, h.ActionBinding, h.Chain, h.CreatedAt
}
