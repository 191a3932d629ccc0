package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/wire"
)

var _ gateway.Streamer = (*Client)(nil)

// Stream publishes req as Call does and returns the stream of its replies;
// see gateway.Streamer.
//
// Unlike a call's, a stream's entry stays in the table of streams until
// the stream is closed: every reply with its correlation id goes into the
// stream's reorder buffer (replyStream.receive), on the goroutine that
// consumes replies, which never waits for the stream's reader.
func (c *Client) Stream(ctx context.Context, exchange, key string, req *wire.Request, b gateway.StreamBounds) (gateway.ReplyStream, error) {
	l, err := c.lane()
	if err != nil {
		return nil, err
	}
	req.CorrelationID = wire.NewID()
	req.ReplyTo = l.replyAddress()
	cl := newCall(exchange, key, req)
	cl.corrID = req.CorrelationID
	rs := &replyStream{c: c, l: l, cl: cl, method: req.Method, bounds: b.WithDefaults(), wake: make(chan struct{}, 1), held: make(map[int64]part)}
	c.streams.add(cl.corrID, rs)
	l.users.Add(1) // a renewed lane stays open for the stream (renew.go)
	if err := l.submit(ctx, cl); err != nil {
		c.streams.remove(cl.corrID)
		l.users.Add(-1)
		return nil, err
	}
	return rs, nil
}

// streams maps correlation ids to the open streams. It is apart from the
// pending map of calls, whose entries leave on their first reply.
type streams struct {
	mu sync.Mutex
	m  map[string]*replyStream
}

func (s *streams) add(id string, rs *replyStream) {
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]*replyStream)
	}
	s.m[id] = rs
	s.mu.Unlock()
}

func (s *streams) remove(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

func (s *streams) get(id string) *replyStream {
	s.mu.Lock()
	rs := s.m[id]
	s.mu.Unlock()
	return rs
}

func (s *streams) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// part is one reply of a stream, as held until its reader takes it.
type part struct {
	body        []byte
	contentType string
	headers     amqp.Table
}

// replyStream is the reorder buffer of one stream: the replies received
// and not yet read, by figway-seq. receive fills it on the goroutine that
// consumes replies and never blocks; Next empties it in order on the
// caller's. What it holds is bounded (gateway.StreamBounds): past the
// bound the stream fails and holds nothing more.
type replyStream struct {
	c      *Client
	l      *lane
	cl     *call // the request: its publish may still fail (nack, return)
	method string
	bounds gateway.StreamBounds
	wake   chan struct{} // buffered 1: receive has changed something

	mu     sync.Mutex
	held   map[int64]part // received, not yet read
	bytes  int            // of the bodies in held
	next   int64          // the seq Next returns next
	end    *part          // the end message, once received
	endSeq int64
	err    error // the stream's failure, once known to receive
	// gap is the failure of an end that came with messages missing: it
	// is the stream's once the messages before the gap have been read.
	gap     error
	arrived int       // replies received, duplicates included
	last    time.Time // when the last reply was received
	closed  bool
	// cancelled: the worker was told to stop already (overflow).
	cancelled bool
}

// receive puts one reply of the stream into the buffer: it drops a
// duplicate, fails the stream on a malformed reply, on a gap open when
// the end comes, or past the bounds, and wakes the reader.
func (rs *replyStream) receive(d *amqp.Delivery) {
	seq, end, perr := wire.StreamPart(d.Headers)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed || rs.err != nil || rs.gap != nil {
		return
	}
	rs.arrived++
	rs.last = time.Now()
	_, dup := rs.held[seq]
	switch {
	case perr != nil:
		rs.fail(fmt.Errorf("%w: %v", gateway.ErrBadReply, perr))
	case dup || seq < rs.next || rs.end != nil && seq >= rs.endSeq:
		rs.c.streamDuplicates.Add(1) // a message past the end is one too
		return
	case end:
		rs.ended(seq, d)
	case len(rs.held)+1 > rs.bounds.Messages || rs.bytes+len(d.Body) > rs.bounds.Bytes:
		rs.fail(fmt.Errorf("%w (%d messages, %d bytes held; bounds %d, %d)", gateway.ErrStreamBuffer,
			len(rs.held), rs.bytes, rs.bounds.Messages, rs.bounds.Bytes))
		rs.cancelNow()
	default:
		rs.held[seq] = part{body: d.Body, contentType: d.ContentType, headers: d.Headers}
		rs.bytes += len(d.Body)
	}
	select {
	case rs.wake <- struct{}{}:
	default:
	}
}

// ended takes the end of the stream, numbered seq: every message before it
// must have been received by now. rs.mu is held.
func (rs *replyStream) ended(seq int64, d *amqp.Delivery) {
	have := 0
	for s := range rs.held {
		if s < seq {
			have++
		}
	}
	if missing := int(seq-rs.next) - have; missing > 0 {
		rs.gap = fmt.Errorf("%w: %w: %d of messages %d to %d missing at the end", gateway.ErrBadReply, gateway.ErrStreamGap,
			missing, rs.next, seq-1)
		return
	}
	rs.end, rs.endSeq = &part{headers: d.Headers}, seq
}

// fail ends the stream with err and drops what it holds. rs.mu is held.
func (rs *replyStream) fail(err error) {
	rs.err = err
	rs.held, rs.bytes = nil, 0
}

// cancelNow has the worker told to stop sending without waiting for the
// stream's reader, which may be blocked in a send to its slow caller for
// as long as that caller takes to read what it was sent. rs.mu is held.
func (rs *replyStream) cancelNow() {
	if !rs.l.s.cancels {
		return
	}
	select {
	case rs.l.s.cancelq <- cancelReq{l: rs.l, method: rs.method, corrID: rs.cl.corrID}:
		rs.cancelled = true
	default: // Close sends it
	}
}

// Next returns the stream's next message, or its end; see
// gateway.ReplyStream.
func (rs *replyStream) Next(ctx context.Context) (*gateway.Reply, bool, error) {
	var idle *time.Timer
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	for {
		rep, end, last, err := rs.take()
		if rep != nil || err != nil {
			return rep, end, err
		}
		var idleC <-chan time.Time
		if !last.IsZero() {
			wait := time.Until(last.Add(rs.bounds.Idle))
			if wait <= 0 {
				return nil, false, rs.broken(fmt.Sprintf("no message for %v", rs.bounds.Idle))
			}
			if idle == nil {
				idle = time.NewTimer(wait)
			} else {
				idle.Reset(wait)
			}
			idleC = idle.C
		}
		select {
		case <-rs.wake:
		case o := <-rs.cl.done: // the request's publish failed
			return nil, false, o.err
		case <-ctx.Done():
			return nil, false, rs.expired(ctx)
		case <-rs.l.dead:
			if rep, end, _, err := rs.take(); rep != nil || err != nil {
				return rep, end, err
			}
			return nil, false, rs.l.lost(rs.cl)
		case <-idleC:
		}
	}
}

// take returns the next message or the end if it is there, or the
// stream's failure; otherwise nothing, and when the last reply came.
func (rs *replyStream) take() (rep *gateway.Reply, end bool, last time.Time, err error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.err != nil {
		return nil, false, last, rs.err
	}
	if p, ok := rs.held[rs.next]; ok {
		delete(rs.held, rs.next)
		rs.next++
		rs.bytes -= len(p.body)
		m, err := wire.ReplyMetadata(p.headers)
		if err != nil {
			return nil, false, last, fmt.Errorf("%w: %v", gateway.ErrBadReply, err)
		}
		return &gateway.Reply{Body: p.body, ContentType: p.contentType, Header: m.Header, HTTPStatus: m.HTTPStatus}, false, last, nil
	}
	if rs.gap != nil {
		// The messages before the gap have been read: the caller gets them,
		// then the gap.
		rs.fail(rs.gap)
		return nil, false, last, rs.err
	}
	if rs.end != nil && rs.endSeq == rs.next {
		rep, err := reply(&outcome{headers: rs.end.headers})
		return rep, err == nil, last, err
	}
	return nil, false, rs.last, nil
}

// broken is the error of a stream that stopped without its end: a gap if
// one is open, else ErrStreamBroken.
func (rs *replyStream) broken(why string) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.held) > 0 {
		return fmt.Errorf("%w: %w: message %d missing, %d later ones held (%s)", gateway.ErrBadReply, gateway.ErrStreamGap,
			rs.next, len(rs.held), why)
	}
	return fmt.Errorf("%w: %w after %d messages (%s)", gateway.ErrUnavailable, gateway.ErrStreamBroken, rs.next, why)
}

// expired is the error of a stream whose context ended: as a call's before
// the first reply, otherwise a broken stream (or a gap) at the deadline.
func (rs *replyStream) expired(ctx context.Context) error {
	rs.mu.Lock()
	arrived := rs.arrived
	rs.mu.Unlock()
	if arrived == 0 || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return waitErr(ctx, false)
	}
	return rs.broken("deadline passed")
}

// Close removes the stream from the table: later replies are unmatched.
// A stream closed before its end — its caller went away, or figway failed
// it — is cancelled: the worker is told to stop sending (sendCancel).
func (rs *replyStream) Close() {
	rs.c.streams.remove(rs.cl.corrID)
	rs.mu.Lock()
	rs.closed = true
	rs.held, rs.bytes = nil, 0
	stopped := rs.end != nil && rs.err == nil || rs.cancelled // the worker sends no more
	rs.mu.Unlock()
	if !stopped && rs.cl.published.Load() {
		rs.c.sendCancel(rs.l, rs.method, rs.cl.corrID)
	}
	rs.l.users.Add(-1)
}
