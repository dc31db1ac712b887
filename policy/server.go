package policy

import (
	"strconv"
	"time"

	"github.com/approvebot/approvebot/policy/confnode"
)

// ServerConfig bounds what a connection may cost before it has proved who
// it is: how many may be open, how long and how much their headers and the
// unauthenticated callback bodies may take. Agents waiting for a decision
// are counted apart, so unauthenticated traffic cannot take their places.
type ServerConfig struct {
	// MaxConnections caps open connections other than held agents. When
	// they are all taken, new connections wait in the listen queue.
	MaxConnections int
	// MaxHeld caps agents held waiting for a decision. Past it, an agent
	// waits in an ordinary connection (counted in MaxConnections).
	MaxHeld int
	// HeaderTimeout bounds reading a request's headers.
	HeaderTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int
	// CallbackReadTimeout bounds reading the body of a platform callback
	// (/slack/interactions, /teams/messages), from the end of its headers.
	CallbackReadTimeout time.Duration
	// CallbackMemory bounds the bytes of callback bodies being read at
	// once, before their signatures are checked.
	CallbackMemory int64
}

// Defaults of the server section.
const (
	DefaultMaxConnections      = 1024
	DefaultMaxHeld             = 10000
	DefaultHeaderTimeout       = 5 * time.Second
	DefaultMaxHeaderBytes      = 32 << 10
	DefaultCallbackReadTimeout = 5 * time.Second
	DefaultCallbackMemory      = 4 << 20
)

func (p *parser) server(top *confnode.Object, cfg *Config) {
	o := p.Object(top.Val["server"], "server", "max_connections", "max_held", "header_timeout", "max_header_bytes", "callback_read_timeout", "callback_memory")
	sc := &cfg.Server
	sc.MaxConnections = p.wholeNumber(o, "max_connections", DefaultMaxConnections, 1, 1<<20)
	sc.MaxHeld = p.wholeNumber(o, "max_held", DefaultMaxHeld, 0, 1<<22)
	sc.HeaderTimeout = p.Duration(o, "header_timeout", DefaultHeaderTimeout, false)
	sc.CallbackReadTimeout = p.Duration(o, "callback_read_timeout", DefaultCallbackReadTimeout, false)
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"header_timeout", sc.HeaderTimeout}, {"callback_read_timeout", sc.CallbackReadTimeout}} {
		if d.v > time.Minute {
			p.Add(o.Val[d.key].Line, "server.%s may be at most 1m, not %s", d.key, d.v)
		}
	}
	sc.MaxHeaderBytes = DefaultMaxHeaderBytes
	if n := p.Size(o, "max_header_bytes", 0); n != 0 {
		if n < 4<<10 || n > 1<<20 {
			p.Add(o.Val["max_header_bytes"].Line, "server.max_header_bytes must be between 4KiB and 1MiB, not %s", p.Str(o, "max_header_bytes", confnode.Optional))
		} else {
			sc.MaxHeaderBytes = int(n)
		}
	}
	sc.CallbackMemory = DefaultCallbackMemory
	if n := p.Size(o, "callback_memory", 0); n != 0 {
		if n < 1<<20 || n > 1<<30 {
			p.Add(o.Val["callback_memory"].Line, "server.callback_memory must be between 1MiB and 1GiB, not %s", p.Str(o, "callback_memory", confnode.Optional))
		} else {
			sc.CallbackMemory = n
		}
	}
}

// wholeNumber reads a whole number between min and max; absent gives def.
func (p *parser) wholeNumber(o *confnode.Object, key string, def, min, max int) int {
	s := p.Str(o, key, confnode.Optional)
	if s == "" {
		return def
	}
	at, line := confnode.Join(o.Path, key), o.Val[key].Line
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		p.Add(line, "%s must be a whole number from %d to %d, not %q", at, min, max, s)
		return def
	}
	return n
}
