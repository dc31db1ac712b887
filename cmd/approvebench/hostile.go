package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// hostileResult is what slow, unauthenticated clients cost while agents
// and clicks go on.
type hostileResult struct {
	Clients        int
	MaxConnections int // server.max_connections in this run
	Took           time.Duration
	RSSBefore      int64
	RSSPeak        int64
	FDsBefore      int
	FDsPeak        int
	Dialled        int64 // hostile connections opened in all
	Cut            int64 // of them, closed by the server before they had sent everything
	Sent           int64 // bytes the hostile clients got onto the wire
	Agents         int   // agent requests during the attack
	AgentErrors    int
	AgentP50       time.Duration
	AgentP99       time.Duration
	Decision       decisionResult // clicks on held requests during the attack
}

// hostilePayload is how much each hostile client tries to send.
const hostilePayload = 960 << 10

// hostileRun opens clients that each try to send 960 KiB of headers (half
// of them) or of a /slack/interactions body (the other half), 1 KiB every
// 50 ms, reconnecting whenever the server cuts them off, for the length of
// the run. Meanwhile agents submit requests and an approver decides held
// ones. The server's connection cap is set below the number of clients, so
// the cap, not only the deadlines, is exercised.
func (b *bench) hostileRun() error {
	dir, err := b.newDir("hostile")
	if err != nil {
		return err
	}
	const maxConns = 128
	s, err := b.startServer(dir, nil, fmt.Sprintf("server:\n  max_connections: %d\n", maxConns))
	if err != nil {
		return err
	}
	defer s.kill()
	sz := b.rep.Sizes
	res := hostileResult{Clients: sz.Hostile, MaxConnections: maxConns}
	if _, err := b.intake(s, "warm", 200, 16); err != nil {
		return err
	}
	posts := s.fake.Posts(channel)
	held := b.hold(s, "hostile", sz.HostileClicks)
	defer held.release()
	if err := b.waitPosts(s, posts+sz.HostileClicks); err != nil {
		return err
	}
	b.settle(s)
	time.Sleep(time.Second)
	if res.RSSBefore, err = s.rss(); err != nil {
		return err
	}
	if res.FDsBefore, err = s.fds(); err != nil {
		return err
	}
	res.RSSPeak, res.FDsPeak = res.RSSBefore, res.FDsBefore

	b.logf("hostile: %d slow clients for %v, server.max_connections %d", sz.Hostile, sz.HostileFor, maxConns)
	ctx, cancel := context.WithTimeout(b.ctx, sz.HostileFor)
	defer cancel()
	host := strings.TrimPrefix(s.url, "http://")
	var wg sync.WaitGroup
	var dialled, cut, sent atomic.Int64
	for i := range sz.Hostile {
		wg.Go(func() { slowClient(ctx, host, i%2 == 0, &dialled, &cut, &sent) })
	}
	// Sample the server's memory and descriptors throughout.
	var sampler sync.WaitGroup
	var peakMu sync.Mutex
	sampler.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rss, err1 := s.rss()
			fds, err2 := s.fds()
			peakMu.Lock()
			if err1 == nil && rss > res.RSSPeak {
				res.RSSPeak = rss
			}
			if err2 == nil && fds > res.FDsPeak {
				res.FDsPeak = fds
			}
			peakMu.Unlock()
		}
	})
	start := time.Now()
	// Let the attack fill the slots before the agents start.
	time.Sleep(sz.HostileFor / 5)
	var lat []time.Duration
	var latMu sync.Mutex
	// A fixed number of agent requests, spread over the attack, so that the
	// memory measured is the attack's and not a growing store's.
	// A fixed number of agent requests, spread over the attack, so that the
	// memory measured is the attack's and not a growing store's.
	var agents sync.WaitGroup
	var n atomic.Int64
	pace := time.NewTicker((sz.HostileFor * 3 / 4) / time.Duration(sz.HostileAgents))
	defer pace.Stop()
	for range 4 {
		agents.Go(func() {
			for {
				i := n.Add(1)
				if i > int64(sz.HostileAgents) {
					return
				}
				<-pace.C
				t0 := time.Now()
				code, a, err := b.submit(b.ctx, s, body(fmt.Sprintf("bench-hostile-agent-%d", i)), true, nil)
				latMu.Lock()
				if err != nil || code != 202 || a.ApprovalRequestID == "" {
					res.AgentErrors++
					b.fail("agent request during the attack: HTTP %d %v %+v", code, err, a)
				} else {
					lat = append(lat, time.Since(t0))
				}
				latMu.Unlock()
			}
		})
	}
	res.Decision, err = b.decide(s, held, sz.HostileClicks, sz.HostileClicks)
	if err != nil {
		return err
	}
	agents.Wait()
	<-ctx.Done()
	wg.Wait()
	sampler.Wait()
	res.Took = time.Since(start)
	res.Agents = sz.HostileAgents
	res.AgentP50, res.AgentP99 = percentile(lat, 50), percentile(lat, 99)
	res.Dialled, res.Cut, res.Sent = dialled.Load(), cut.Load(), sent.Load()
	b.logf("hostile: RSS %d → peak %d MiB, fds %d → peak %d; %d hostile connections, %d cut off, %d MiB sent; %d agent requests (%d errors, p50 %v p99 %v); clicks p50 %v p99 %v (%d errors)",
		res.RSSBefore>>20, res.RSSPeak>>20, res.FDsBefore, res.FDsPeak, res.Dialled, res.Cut, res.Sent>>20,
		res.Agents, res.AgentErrors, res.AgentP50, res.AgentP99, res.Decision.P50, res.Decision.P99, res.Decision.Errors)
	b.rep.Hostile = res
	held.release()
	return b.stop(s)
}

// slowClient sends headers (or a callback body) 1 KiB at a time until ctx
// ends, reconnecting whenever the server closes the connection.
func slowClient(ctx context.Context, host string, headers bool, dialled, cut, sent *atomic.Int64) {
	chunk := []byte(strings.Repeat("a", 1020) + "\r\n")
	var d net.Dialer
	for ctx.Err() == nil {
		c, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		dialled.Add(1)
		stop := context.AfterFunc(ctx, func() { c.Close() })
		var head string
		if headers {
			head = "POST /slack/interactions HTTP/1.1\r\nHost: x\r\n"
		} else {
			head = fmt.Sprintf("POST /slack/interactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", hostilePayload)
		}
		_, err = c.Write([]byte(head))
		t := time.NewTicker(50 * time.Millisecond)
		for n := 0; err == nil && n < hostilePayload; n += len(chunk) {
			select {
			case <-ctx.Done():
				err = ctx.Err()
				continue
			case <-t.C:
			}
			if headers {
				_, err = fmt.Fprintf(c, "X-Pad-%d: %s", n, chunk)
			} else {
				_, err = c.Write(chunk)
			}
			if err == nil {
				sent.Add(int64(len(chunk)))
			}
		}
		t.Stop()
		if err != nil && ctx.Err() == nil {
			cut.Add(1)
		}
		stop()
		c.Close()
	}
}
