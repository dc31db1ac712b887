package bot

import (
	"errors"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// hangups notices held agents that close their connection, with one epoll
// set and one goroutine for all of them: a goroutine parked in Read per
// held agent would cost the stack that detaching them saved.
type hangups struct {
	once sync.Once
	err  error
	ep   int
	wake int // an eventfd in the set: written to stop the loop

	mu    sync.Mutex
	conns map[int32]*hangupWatch
}

type hangupWatch struct {
	rc   syscall.RawConn
	gone func()
}

// watch calls gone once the peer of conn has closed or reset it. stop must
// be called before conn is closed (its descriptor may then be reused).
// ok is false when conn cannot be watched.
func (hw *hangups) watch(conn net.Conn, gone func()) (stop func(), ok bool) {
	hw.once.Do(hw.start)
	if hw.err != nil {
		return nil, false
	}
	// The socket itself, under TLS and the Listener's wrapper: a peer that
	// hangs up is seen there whatever runs over it.
	if lc, isLimited := limitedOf(conn); isLimited {
		conn = lc.Conn
	}
	sc, isSys := conn.(syscall.Conn)
	if !isSys {
		return nil, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, false
	}
	fd := int32(-1)
	if rc.Control(func(f uintptr) { fd = int32(f) }) != nil || fd < 0 {
		return nil, false
	}
	w := &hangupWatch{rc: rc, gone: gone}
	hw.mu.Lock()
	if hw.wake < 0 {
		hw.mu.Unlock()
		return nil, false
	}
	hw.conns[fd] = w
	err = unix.EpollCtl(hw.ep, unix.EPOLL_CTL_ADD, int(fd), &unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLET, Fd: fd})
	if err != nil {
		delete(hw.conns, fd)
	}
	hw.mu.Unlock()
	if err != nil {
		return nil, false
	}
	return func() {
		hw.mu.Lock()
		if hw.conns[fd] == w {
			delete(hw.conns, fd)
			if hw.wake >= 0 {
				_ = unix.EpollCtl(hw.ep, unix.EPOLL_CTL_DEL, int(fd), nil)
			}
		}
		hw.mu.Unlock()
	}, true
}

func (hw *hangups) start() {
	hw.conns = map[int32]*hangupWatch{}
	hw.ep, hw.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if hw.err != nil {
		return
	}
	hw.wake, hw.err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if hw.err == nil {
		hw.err = unix.EpollCtl(hw.ep, unix.EPOLL_CTL_ADD, hw.wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(hw.wake)})
	}
	if hw.err != nil {
		unix.Close(hw.ep)
		return
	}
	go hw.loop(int32(hw.wake))
}

// close stops the loop; watch then reports false.
func (hw *hangups) close() {
	hw.once.Do(func() { hw.err = errors.New("closed") }) // never started
	hw.mu.Lock()
	defer hw.mu.Unlock()
	if hw.err != nil || hw.wake < 0 {
		return
	}
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(hw.wake, one[:])
	hw.wake = -1
}

func (hw *hangups) loop(wake int32) {
	events := make([]unix.EpollEvent, 128)
	defer func() {
		unix.Close(int(wake))
		unix.Close(hw.ep)
	}()
	for {
		n, err := unix.EpollWait(hw.ep, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == wake {
				return
			}
			hw.mu.Lock()
			w := hw.conns[ev.Fd]
			hw.mu.Unlock()
			// The event may be for a socket closed since, whose number a
			// new one now has: ask the socket itself.
			if w != nil && peerGone(w.rc) {
				w.gone()
			}
		}
	}
}

// peerGone peeks at the socket without blocking, after epoll said the peer
// shut its end (or reset it): end of stream, an error, or bytes sent before
// the shutdown (a TLS close_notify) mean the agent is gone. Nothing to read
// means the event was for a socket closed since, whose number this one now
// has.
func peerGone(rc syscall.RawConn) bool {
	gone := false
	_ = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		gone = !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR)
		return true
	})
	return gone
}
