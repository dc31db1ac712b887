//go:build !linux

package bot

import "net"

// hangups notices held agents that close their connection. Off Linux, a
// goroutine per held agent waits in Read.
type hangups struct{}

func (hw *hangups) watch(conn net.Conn, gone func()) (stop func(), ok bool) {
	go func() {
		var b [512]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				gone()
				return
			}
		}
	}()
	return func() {}, true
}

func (hw *hangups) close() {}
