// Package connlimit caps the connections a listener holds open at once, so
// that slow or idle clients cannot take every file descriptor of the
// process: past the cap, new connections wait in the kernel's accept
// queue until one closes, and the process's other listeners (and its
// broker connection) keep the descriptors they need (docs/operations.md,
// "Limits and timeouts").
package connlimit

import (
	"net"
	"sync"
	"sync/atomic"
)

// Listener is a net.Listener that holds at most Max connections open.
type Listener struct {
	net.Listener
	slots  chan struct{}
	open   atomic.Int64
	closed chan struct{}
	once   sync.Once
}

// New returns l capped at n open connections (n ≥ 1).
func New(l net.Listener, n int) *Listener {
	return &Listener{Listener: l, slots: make(chan struct{}, max(n, 1)), closed: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection. The slot is given
// back when the connection is closed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.open.Add(1)
	return &conn{Conn: c, l: l}, nil
}

// Close closes the listener; an Accept waiting for a slot returns.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// Open returns the number of connections open now.
func (l *Listener) Open() int { return int(l.open.Load()) }

// Max returns the cap.
func (l *Listener) Max() int { return cap(l.slots) }

type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		<-c.l.slots
	})
	return err
}

// reserve is how many descriptors Default leaves for everything but the
// ingress connections: the broker connection, the listeners, files read at
// reload, the legacy upstreams' connections.
const reserve = 256

// Default returns the cap figway uses per ingress when the routes file sets
// none: the process's descriptor limit (RLIMIT_NOFILE, which Go raises to
// the hard limit at start) less a reserve, shared by the listeners, and at
// most 16384. It is never below 64.
func Default(listeners int) int {
	n := (descriptorLimit() - reserve) / max(listeners, 1)
	return min(max(n, 64), 16384)
}
