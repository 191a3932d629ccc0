// Package batchconn is a net.Conn that gathers the writes of many callers
// into few system calls.
//
// amqp091-go writes every publish, ack and reply with a write system call
// of its own, under its connection's lock. When many calls share one
// connection — figway's lanes, a worker's replies and acks — most of those
// calls find the socket busy and could have gone out together. A Conn
// copies each Write into a buffer and returns; one goroutine writes out
// whatever has gathered, in order, while the next batch gathers behind it.
// On a busy connection a single write system call carries many frames; on
// an idle one a Write costs a copy and a goroutine hand-off instead of the
// system call.
//
// Writes are asynchronous, so a write error surfaces late: the Conn closes
// the underlying connection at once (the peer's reader and the owner's
// reader both see it end, which is how amqp091-go learns that its
// connection died), and every later Write returns the error. A caller that
// needs to know whether bytes reached the socket cannot learn it from Write
// — neither could it before: a write that returned only reached the
// kernel's buffer.
package batchconn

import (
	"net"
	"sync"
)

// DefaultLimit is the gathered bytes beyond which Write waits for the
// writer, if New is given no limit: a peer that stopped reading (a broker
// under a resource alarm) holds its writers back as a full socket buffer
// would, instead of letting the buffer grow.
const DefaultLimit = 1 << 20

// Conn is a net.Conn whose writes are gathered and written by one
// goroutine. Reads, deadlines and addresses are the underlying
// connection's. Close stops the writer and closes the connection; bytes
// not yet written are dropped.
type Conn struct {
	net.Conn
	limit int

	mu    sync.Mutex
	room  sync.Cond // signalled when the writer has taken a batch, or on error
	buf   []byte    // gathered, not yet taken by the writer
	spare []byte    // the writer's last batch, reused
	err   error     // the first write error, or net.ErrClosed after Close
	// waiting counts the Writes waiting for room (for tests to observe).
	waiting int

	kick chan struct{} // buffered 1: there is something to write
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the writer has returned
	once sync.Once
}

// New returns c with gathered writes, and starts its writer. If limit is 0
// or less, DefaultLimit is used.
func New(c net.Conn, limit int) *Conn {
	if limit <= 0 {
		limit = DefaultLimit
	}
	b := &Conn{
		Conn:  c,
		limit: limit,
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	b.room.L = &b.mu
	go b.write()
	return b
}

// Write copies p to be written, in order after every earlier Write. It
// waits only while more than the limit is gathered, and fails once a
// write has failed or the Conn is closed.
func (b *Conn) Write(p []byte) (int, error) {
	b.mu.Lock()
	for b.err == nil && len(b.buf) > 0 && len(b.buf)+len(p) > b.limit {
		b.waiting++
		b.room.Wait()
		b.waiting--
	}
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	first := len(b.buf) == 0
	b.buf = append(b.buf, p...)
	b.mu.Unlock()
	if first {
		select {
		case b.kick <- struct{}{}:
		default: // the writer is already told
		}
	}
	return len(p), nil
}

// write is the writer: it takes whatever has gathered and writes it, until
// Close or a write error.
func (b *Conn) write() {
	defer close(b.done)
	for {
		select {
		case <-b.stop:
			return
		case <-b.kick:
		}
		for {
			b.mu.Lock()
			if b.err != nil || len(b.buf) == 0 {
				b.mu.Unlock()
				break
			}
			out := b.buf
			b.buf = b.spare[:0]
			b.room.Broadcast()
			b.mu.Unlock()

			_, err := b.Conn.Write(out)

			b.mu.Lock()
			b.spare = out[:0]
			if err != nil && b.err == nil {
				b.err = err
			}
			b.room.Broadcast()
			b.mu.Unlock()
			if err != nil {
				// The owner learns of it from its reader, as from any
				// broken connection.
				b.Conn.Close()
				return
			}
		}
	}
}

// Close stops the writer, drops what it has not written, and closes the
// underlying connection. It returns once the writer has returned.
func (b *Conn) Close() error {
	b.mu.Lock()
	if b.err == nil {
		b.err = net.ErrClosed
	}
	b.room.Broadcast()
	b.mu.Unlock()
	b.once.Do(func() { close(b.stop) })
	err := b.Conn.Close() // ends a write in progress
	<-b.done
	return err
}
