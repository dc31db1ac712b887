package bot

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/approvebot/approvebot"
)

// An agent waits minutes for a human. Kept inside net/http, each waiting
// agent holds a parked handler goroutine with its stack, the connection's
// background reader and net/http's buffers: most of the memory a held
// request costs. So an HTTP/1.x request that must wait is taken off
// net/http (hijacked) once its body is read, and is answered from a
// callback when the request becomes final, when its deadline has passed, or
// when a shutdown drains it. Until then it is a socket and this small
// struct.
//
// The answer always closes the connection. A waiting agent that closes its
// end is noticed at once (hangups) and its descriptor released; its request
// stays pending, for a retry to reattach to, as it does when a held agent
// goes away inside net/http.

// heldConn is one detached, waiting agent.
type heldConn struct {
	s      *Server
	conn   net.Conn
	caller string
	req    *approvebot.Request // as it was when the wait began
	log    *slog.Logger        // names the request

	mu    sync.Mutex
	done  bool
	stops []func()
}

// answerWriteTimeout bounds writing an answer to a detached agent.
const answerWriteTimeout = 10 * time.Second

// holdDetached takes a waiting HTTP/1.x request off net/http. It reports
// false, leaving w untouched, when the connection cannot be taken over
// (HTTP/2, or a ResponseWriter without Hijack); the caller then waits in
// the handler.
func (s *Server) holdDetached(w http.ResponseWriter, r *http.Request, req *approvebot.Request, caller string) bool {
	if r.ProtoMajor != 1 {
		return false
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	// The body was read in full; anything buffered past it would be a
	// pipelined request, which the closing answer turns away. net/http's
	// read deadline (ReadTimeout) no longer applies: nothing reads here.
	_ = conn.SetDeadline(time.Time{})
	// An authenticated agent waiting leaves the open connections' count
	// for the held agents' (bot.Listener).
	if lc, ok := limitedOf(conn); ok {
		lc.hold()
	}
	h := &heldConn{s: s, conn: conn, caller: caller, req: req, log: s.log.With(logKeyRequestID, req.ID)}
	s.holding(1)
	s.engine.metrics.heldConns.Inc()
	if stop, ok := s.hangups.watch(conn, h.gone); ok {
		h.onStop(stop)
	}

	h.onStop(s.engine.Watch(req.ID, h.finish))
	// The engine's own timer expires the request at its deadline; this one
	// only answers if that somehow did not happen (the store failing), so
	// the agent is never held past its deadline.
	clock := s.engine.clock
	t := clock.AfterFunc(req.Deadline.Add(holdSlack).Sub(clock.Now()), func() {
		cur, err := s.engine.Get(req.ID)
		if err != nil {
			cur = req
		}
		h.finish(cur)
	})
	h.onStop(func() { t.Stop() })
	stopDrain := context.AfterFunc(s.drainCtx, func() { h.finish(h.req) })
	h.onStop(func() { stopDrain() })

	// The request may have become final before the watch was in place.
	if st, err := s.engine.store.Status(req.ID); err == nil && st.Final() {
		if cur, err := s.engine.Get(req.ID); err == nil {
			h.finish(cur)
		}
	}
	return true
}

// onStop registers f to run when the wait ends (at once if it has).
func (h *heldConn) onStop(f func()) {
	h.mu.Lock()
	if h.done {
		h.mu.Unlock()
		f()
		return
	}
	h.stops = append(h.stops, f)
	h.mu.Unlock()
}

// end stops the wait, once: it reports false when it had ended already.
func (h *heldConn) end() bool {
	h.mu.Lock()
	if h.done {
		h.mu.Unlock()
		return false
	}
	h.done = true
	stops := h.stops
	h.stops = nil
	h.mu.Unlock()
	for _, f := range stops {
		f()
	}
	return true
}

func (h *heldConn) release() {
	h.s.engine.metrics.heldConns.Dec()
	h.s.holding(-1)
}

// gone releases an agent that closed its connection before its answer.
func (h *heldConn) gone() {
	if !h.end() {
		return
	}
	h.conn.Close()
	h.release()
	h.log.Info("agent went away; request stays pending")
}

// finish answers the agent with cur, once, and releases the wait.
func (h *heldConn) finish(cur *approvebot.Request) {
	if !h.end() {
		return
	}
	defer h.release()
	if !cur.Status.Final() {
		h.log.Warn("answering a held request before its decision")
	}
	body, err := json.Marshal(h.s.answer(cur, h.caller))
	if err != nil {
		h.log.Error("encode answer", "err", err)
		h.conn.Close()
		return
	}
	body = append(body, '\n')
	// A socket deadline: the kernel keeps it on the wall clock. The Date
	// header is the wall clock's too, as net/http writes it on every other
	// answer.
	_ = h.conn.SetWriteDeadline(time.Now().Add(answerWriteTimeout))
	bw := bufio.NewWriterSize(h.conn, 512)
	_, _ = bw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n" +
		"Connection: close\r\nDate: " + time.Now().UTC().Format(http.TimeFormat) +
		"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	_, _ = bw.Write(body)
	if err := bw.Flush(); err != nil {
		h.log.Info("agent went away before its answer; the request stays as it is", "err", err)
	}
	h.conn.Close()
}
