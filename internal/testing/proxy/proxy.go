// Package proxy is a TCP proxy for fault-injection tests: it sits
// between a client and a server (figway and RabbitMQ) and, on command,
// passes bytes through, delays them, black-holes the connections or resets
// them.
//
// A black hole holds bytes in both directions without closing anything, as
// a network partition does: the peers see silence, not an error, until
// their own timeouts (AMQP heartbeats) notice; one side closing is not
// passed on to the other either. Back in pass mode the held bytes flow
// again, in order, and closes are passed on. Reset closes every connection with a TCP RST
// and, while the mode lasts, resets new ones as soon as they connect.
package proxy

import (
	"net"
	"sync"
	"time"
)

// Mode is what the proxy does with the bytes and connections it carries.
type Mode int

const (
	// Pass forwards bytes as they come.
	Pass Mode = iota
	// Latency forwards each chunk of bytes a fixed delay after it arrived.
	Latency
	// Blackhole holds all bytes, in both directions, on every connection.
	Blackhole
	// Reset resets every connection, and every new one at once.
	Reset
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Latency:
		return "latency"
	case Blackhole:
		return "blackhole"
	case Reset:
		return "reset"
	}
	return "unknown"
}

// Proxy forwards TCP connections from its listener to one target address.
// Its methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu      sync.Mutex
	mode    Mode
	delay   time.Duration
	changed chan struct{} // closed and replaced on every mode change
	links   map[*link]struct{}
	closed  bool
}

// Start listens on a free port of 127.0.0.1 and forwards every connection
// to target (host:port), in Pass mode, until Close.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, changed: make(chan struct{}), links: map[*link]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr returns the proxy's listening address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Mode returns the proxy's mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Pass forwards bytes as they come, releasing any a black hole held.
func (p *Proxy) Pass() { p.set(Pass, 0) }

// Latency delays every chunk of bytes by d, in both directions.
func (p *Proxy) Latency(d time.Duration) { p.set(Latency, d) }

// Blackhole holds every byte in both directions, on the connections open
// now and on new ones, until the mode changes.
func (p *Proxy) Blackhole() { p.set(Blackhole, 0) }

// Reset resets every open connection with an RST, and every new one as soon
// as it connects, until the mode changes. It returns once the open ones are
// reset.
func (p *Proxy) Reset() { p.set(Reset, 0) }

func (p *Proxy) set(m Mode, d time.Duration) {
	p.mu.Lock()
	p.mode, p.delay = m, d
	close(p.changed)
	p.changed = make(chan struct{})
	var doomed []*link
	if m == Reset {
		for l := range p.links {
			doomed = append(doomed, l)
		}
	}
	p.mu.Unlock()
	for _, l := range doomed {
		l.reset()
	}
}

// state returns the mode, the delay, and a channel closed at the next change.
func (p *Proxy) state() (Mode, time.Duration, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay, p.changed
}

// Close stops listening, closes every connection and waits for every
// goroutine of the proxy to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if mode, _, _ := p.state(); mode == Reset {
			rst(down)
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			rst(down) // as a dead server would
			continue
		}
		l := &link{p: p, down: down, up: up, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			l.close()
			continue
		}
		p.links[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() {
			var pumps sync.WaitGroup
			pumps.Go(func() { l.pump(up, down) })
			pumps.Go(func() { l.pump(down, up) })
			pumps.Wait()
			p.mu.Lock()
			delete(p.links, l)
			p.mu.Unlock()
		})
	}
}

// link is one proxied connection: down is the client's side, up the
// target's.
type link struct {
	p        *Proxy
	down, up net.Conn
	once     sync.Once
	done     chan struct{} // closed when the link is closed
}

func (l *link) close() {
	l.once.Do(func() {
		close(l.done)
		l.down.Close()
		l.up.Close()
	})
}

func (l *link) reset() {
	l.once.Do(func() {
		close(l.done)
		rst(l.down)
		rst(l.up)
	})
}

// closeHeard waits, while the proxy black-holes, before a side's end is
// passed on to the other side: a partition carries no FIN or RST either.
func (l *link) closeHeard() {
	for {
		mode, _, changed := l.p.state()
		if mode != Blackhole {
			return
		}
		select {
		case <-changed:
		case <-l.done:
			return
		}
	}
}

// rst closes c with an RST rather than a FIN.
func rst(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

type chunk struct {
	b  []byte
	at time.Time
}

// pump copies from src to dst, chunk by chunk, applying the proxy's mode to
// each: a reader goroutine timestamps chunks, the writer holds or delays
// them. When either side ends, the link closes.
func (l *link) pump(dst, src net.Conn) {
	chunks := make(chan chunk, 256)
	var reader sync.WaitGroup
	reader.Go(func() {
		defer close(chunks)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case chunks <- chunk{b: append([]byte(nil), buf[:n]...), at: time.Now()}:
				case <-l.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	defer func() {
		l.closeHeard()
		l.close() // ends the reader's Read
		reader.Wait()
	}()
	for c := range chunks {
		if !l.release(c) {
			return
		}
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
}

// release waits until c may be written: never while black-holed, not before
// its delay has passed. It reports false if the link closed meanwhile.
func (l *link) release(c chunk) bool {
	for {
		mode, delay, changed := l.p.state()
		switch mode {
		case Pass:
			return true
		case Reset:
			return false
		case Latency:
			wait := time.Until(c.at.Add(delay))
			if wait <= 0 {
				return true
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
				return true
			case <-changed:
				t.Stop()
			case <-l.done:
				t.Stop()
				return false
			}
		case Blackhole:
			select {
			case <-changed:
			case <-l.done:
				return false
			}
		}
	}
}
