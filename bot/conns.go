package bot

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Listener caps the connections approvebot keeps open, so that a flood of
// connections that never finish their headers runs out of slots before the
// process runs out of descriptors or memory. Two counts: open connections
// (everything that has not become a held agent) and held agents. An agent
// that has authenticated and is waiting for a decision moves from the first
// to the second, so unauthenticated traffic filling the first never takes
// an agent's place in the second, and held agents never crowd out clicks.
//
// When every open slot is taken, Accept makes room by closing the
// connection that has waited longest, and at least patience, without a
// request in progress: one still sending its headers, one idle between
// requests, or a platform callback whose unverified body is still
// arriving. A connection whose request is being served is never closed for
// room, nor one that has just arrived (a burst of genuine clients is
// queued, not cut off). Until one can be closed, new connections wait in
// the kernel's listen backlog.
type Listener struct {
	net.Listener
	open     chan struct{} // a token per open connection
	held     chan struct{} // a token per held agent
	patience time.Duration

	mu      sync.Mutex
	waiting map[*limitedConn]time.Time // closable for room, since when
	evicted atomic.Int64

	closeOnce sync.Once
	closed    chan struct{}
}

// LimitListener wraps inner with maxOpen open and maxHeld held slots;
// a connection waiting for longer than patience may be closed for room.
func LimitListener(inner net.Listener, maxOpen, maxHeld int, patience time.Duration) *Listener {
	return &Listener{
		Listener: inner,
		patience: patience,
		open:     make(chan struct{}, maxOpen),
		held:     make(chan struct{}, maxHeld),
		waiting:  map[*limitedConn]time.Time{},
		closed:   make(chan struct{}),
	}
}

// Accept takes an open slot, making room if it must, then a connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case l.open <- struct{}{}:
	default:
		if err := l.makeRoom(); err != nil {
			return nil, err
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.open
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l}
	l.setWaiting(lc, true)
	return lc, nil
}

// Close stops Accept, also one waiting for a slot.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// ConnState is http.Server's ConnState hook: a connection idle between
// requests may be closed for room.
func (l *Listener) ConnState(c net.Conn, st http.ConnState) {
	lc, ok := limitedOf(c)
	if !ok {
		return
	}
	switch st {
	case http.StateIdle:
		l.setWaiting(lc, true)
	case http.StateHijacked, http.StateClosed:
		l.setWaiting(lc, false)
	}
}

// ConnContext is http.Server's ConnContext hook: it lets handlers reach
// their connection (Serving, Unverified).
func (l *Listener) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if lc, ok := limitedOf(c); ok {
		return context.WithValue(ctx, connKey{}, lc)
	}
	return ctx
}

type connKey struct{}

// Serving marks the connection of a request being served: it is not closed
// for room.
func Serving(ctx context.Context) {
	if lc, ok := ctx.Value(connKey{}).(*limitedConn); ok {
		lc.l.setWaiting(lc, false)
	}
}

// Unverified marks the connection of a request whose body is read before
// it can be verified: it may be closed for room until Serving.
func Unverified(ctx context.Context) {
	if lc, ok := ctx.Value(connKey{}).(*limitedConn); ok {
		lc.l.setWaiting(lc, true)
	}
}

// connCloser returns what closes the request's connection (a no-op
// without a Listener).
func connCloser(ctx context.Context) func() {
	if lc, ok := ctx.Value(connKey{}).(*limitedConn); ok {
		return func() { lc.Close() }
	}
	return func() {}
}

func (l *Listener) setWaiting(c *limitedConn, waiting bool) {
	l.mu.Lock()
	if waiting {
		l.waiting[c] = time.Now()
	} else {
		delete(l.waiting, c)
	}
	l.mu.Unlock()
}

// makeRoom takes an open slot once one is free, closing a connection that
// has waited past patience when there is one. Patience is a share of
// net/http's header timeout, so it is measured on the wall clock too.
func (l *Listener) makeRoom() error {
	t := time.NewTicker(max(l.patience/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		l.evictOne()
		select {
		case l.open <- struct{}{}:
			return nil
		case <-l.closed:
			return net.ErrClosed
		case <-t.C:
		}
	}
}

// evictOne closes the connection that has waited longest, if that is
// longer than patience.
func (l *Listener) evictOne() {
	l.mu.Lock()
	var victim *limitedConn
	var since time.Time
	for c, t := range l.waiting {
		if victim == nil || t.Before(since) {
			victim, since = c, t
		}
	}
	if victim != nil && time.Since(since) < l.patience {
		victim = nil
	}
	delete(l.waiting, victim)
	l.mu.Unlock()
	if victim != nil {
		l.evicted.Add(1)
		victim.Close()
	}
}

// Open and Held count the slots in use.
func (l *Listener) Open() int { return len(l.open) }
func (l *Listener) Held() int { return len(l.held) }

// Collectors are the listener's gauges, for the metrics registry.
func (l *Listener) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "approvebot_open_connections", Help: "Open connections other than held agents (capped by server.max_connections).",
		}, func() float64 { return float64(l.Open()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "approvebot_connections_closed_for_room_total", Help: "Connections without a request being served, closed to make room for a new one.",
		}, func() float64 { return float64(l.evicted.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "approvebot_held_slots", Help: "Held agents' connections (capped by server.max_held).",
		}, func() float64 { return float64(l.Held()) }),
	}
}

// limitedConn gives its slot back when closed.
type limitedConn struct {
	net.Conn
	l *Listener

	mu     sync.Mutex
	held   bool // its slot is a held one
	closed bool
}

// hold moves the connection to a held slot; false when they are all taken
// (it keeps its open slot then).
func (c *limitedConn) hold() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held || c.closed {
		return c.held
	}
	select {
	case c.l.held <- struct{}{}:
	default:
		return false
	}
	c.held = true
	<-c.l.open
	return true
}

func (c *limitedConn) Close() error {
	c.l.setWaiting(c, false)
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		if c.held {
			<-c.l.held
		} else {
			<-c.l.open
		}
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// limitedOf finds the Listener's connection under c, which may be wrapped
// (a *tls.Conn when TLS is served over the Listener).
func limitedOf(c net.Conn) (*limitedConn, bool) {
	for c != nil {
		switch v := c.(type) {
		case *limitedConn:
			return v, true
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil, false
		}
	}
	return nil, false
}

// RegisterMetrics adds collectors (the listener's, the callback guard's) to
// the engine's registry.
func (e *Engine) RegisterMetrics(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := e.metrics.registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}
