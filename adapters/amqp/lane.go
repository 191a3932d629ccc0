package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
)

// laneDepth sizes a lane's notification buffers. The lane's goroutine
// drains them as they come, so they never stay full for amqp091-go's 5 s
// notify timeout (docs/architecture.md, "Facts the code relies on").
const laneDepth = 1024

// A lane is one AMQP channel, its confirms, returns and replies. amqp091-go
// channels are not safe for concurrent use, so every use of ch is
// serialized by the write token: callers publish from their own goroutine
// while they hold it — a hand-off to a publishing goroutine costs a
// goroutine wake-up per call, about 80 µs of latency on a loaded two-core
// machine — and a caller waits for the token only as long as its context
// and the lane live. The lane's goroutine (run) reads what the broker sends
// back on the channel; callers learn of its death through dead.
type lane struct {
	c       *Client
	s       *session
	conn    *amqp.Connection
	ch      *amqp.Channel
	replyTo string
	// frameMax is the connection's negotiated frame_max: no content
	// header larger than it may be written (see publish).
	frameMax int

	write    chan struct{} // the write token: holding it, one may use ch
	confirms chan amqp.Confirmation
	returns  chan amqp.Return
	closes   chan *amqp.Error
	replies  <-chan amqp.Delivery // direct reply-to consumer; nil in queue mode

	dead chan struct{} // closed when run returns
	err  error         // why the lane died; read only after dead is closed

	mu          sync.Mutex       // guards the maps, acked and call.returned
	unconfirmed map[uint64]*call // delivery tag → call, until its confirm
	events      map[string]*call // message id → event, until its confirm

	// Renewal (renew.go): nacked holds, per destination, when its current
	// run of nacks began; acked is set by the first ack; renewals counts
	// the renewals of the lane's slot since one of its lanes was last
	// acked; retiring is set once the session is asked to renew the lane.
	nacked   map[string]time.Time
	acked    bool
	renewals int
	retiring atomic.Bool
	// users counts the calls on the lane: a renewed lane is closed when
	// none is left.
	users atomic.Int64

	// Stuck channels (stuck.go). through is the tag of the last confirm
	// or nack, lastConfirm when it came (or when the lane opened), head
	// what look last saw: the lane's goroutine alone uses them. acks
	// holds, per destination, the last acked publish to it (guarded by
	// mu). suspect says that new calls should avoid the lane;
	// stalledRenewal, that it is renewed for want of confirms rather than
	// for nacks; abandoned, that it died stuck.
	through                 uint64
	lastConfirm             time.Time
	head                    headLook
	acks                    map[dest]lastAck
	suspect, stalledRenewal atomic.Bool
	abandoned               bool
}

// openLane opens a channel in confirm mode. With replyTo set to the direct
// reply-to pseudo-queue it also consumes that on the same channel, before
// any publish, as RabbitMQ requires
// (https://www.rabbitmq.com/docs/direct-reply-to).
func (c *Client) openLane(conn *amqp.Connection, s *session, replyTo string) (*lane, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("confirm mode: %w", err)
	}
	l := &lane{
		c:           c,
		s:           s,
		conn:        conn,
		ch:          ch,
		replyTo:     replyTo,
		frameMax:    conn.Config.FrameSize,
		write:       make(chan struct{}, 1),
		confirms:    ch.NotifyPublish(make(chan amqp.Confirmation, laneDepth)),
		returns:     ch.NotifyReturn(make(chan amqp.Return, laneDepth)),
		closes:      ch.NotifyClose(make(chan *amqp.Error, 1)),
		dead:        make(chan struct{}),
		unconfirmed: make(map[uint64]*call),
		events:      make(map[string]*call),
		nacked:      make(map[string]time.Time),
		acks:        make(map[dest]lastAck),
		lastConfirm: time.Now(),
	}
	if replyTo == wire.DirectReplyTo {
		l.replies, err = consumeOpts{autoAck: true}.consume(ch, wire.DirectReplyTo)
		if err != nil {
			ch.Close()
			return nil, fmt.Errorf("consume %s: %w", wire.DirectReplyTo, err)
		}
	}
	return l, nil
}

// run reads the lane's confirms, returns and replies. It returns when ctx is
// cancelled or the channel closes; then every call still on the lane fails
// through dead.
func (l *lane) run(ctx context.Context) {
	bound := l.c.stallTimeout()
	tick := time.NewTicker(bound / stallChecks)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := l.look(time.Now(), bound); err != nil {
				l.abandoned = true // hold closes the channel
				l.die(err)
				return
			}
		case <-ctx.Done():
			// The session closes the channel: under a broker alarm
			// channel.close may never be answered, and only the session
			// can bound that wait (see closeAll).
			l.die(errors.New("shutting down"))
			return
		case e := <-l.closes:
			if e != nil {
				if connectionLevel(e) {
					// Before the calls learn of it: a retry of theirs
					// waits for the next connection (Ready is false)
					// rather than take a lane of this one not told yet.
					l.s.closing.Store(true)
				}
				l.die(fmt.Errorf("channel closed: %w", e))
			} else {
				l.die(errors.New("channel closed"))
			}
			return
		case conf, ok := <-l.confirms:
			if !ok {
				l.confirms = nil
				continue
			}
			l.confirmed(conf)
		case r, ok := <-l.returns:
			if !ok {
				l.returns = nil
				continue
			}
			l.mu.Lock()
			l.returned(&r)
			l.mu.Unlock()
		case d, ok := <-l.replies:
			if !ok {
				l.replies = nil
				continue
			}
			l.c.deliver(&d)
		}
	}
}

// confirmed handles a confirm or nack that came on the lane.
func (l *lane) confirmed(conf amqp.Confirmation) {
	l.s.confirmed.Add(1)
	l.through, l.lastConfirm = conf.DeliveryTag, time.Now()
	// A basic.return precedes the ack of the same message, and amqp091-go
	// hands it to l.returns before it handles the ack: drain returns first
	// so an unroutable event is never reported as published (an
	// unroutable message is still acked: docs/architecture.md, "Facts the
	// code relies on").
	l.mu.Lock()
	l.drainReturns()
	l.confirm(conf)
	l.mu.Unlock()
}

// connectionLevel reports whether e closes the whole connection: AMQP's
// hard errors (320 connection-forced, 402 invalid-path, 501–541), which
// amqp091-go hands every channel of the connection, as against a channel's
// own (soft) exception such as 404 or 406.
func connectionLevel(e *amqp.Error) bool {
	return e.Code == amqp.ConnectionForced || e.Code == amqp.InvalidPath || e.Code >= amqp.FrameError
}

func (l *lane) die(err error) {
	l.err = err
	close(l.dead)
}

// lost is the error of cl, whose lane died under it: whether the request
// may have reached the broker decides whether it may be published again.
func (l *lane) lost(cl *call) error {
	if cl.published.Load() {
		return fmt.Errorf("%w: %w: %w", gateway.ErrUnavailable, gateway.ErrChannelLost, l.err)
	}
	return fmt.Errorf("%w: %w: %v", gateway.ErrUnavailable, gateway.ErrNotPublished, l.err)
}

func (l *lane) isDead() bool {
	select {
	case <-l.dead:
		return true
	default:
		return false
	}
}

// submit publishes cl on l, from the caller's goroutine, once it holds the
// write token. Publishing errors resolve cl; submit returns an error only
// when cl was never written.
func (l *lane) submit(ctx context.Context, cl *call) error {
	select {
	case l.write <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.dead:
		return l.lost(cl)
	case <-*l.s.blocking.Load():
		// The token's holder may be stuck in a write the blocked broker
		// does not read: fail now rather than at the deadline.
		return l.s.blockedErr(gateway.ErrNotPublished)
	}
	defer func() { <-l.write }()
	if l.isDead() {
		return l.lost(cl)
	}
	l.publish(cl)
	return nil
}

// publish writes cl on the channel. The caller holds the write token.
//
// Its frame is kept small, the work before and after the write in
// functions of their own: the caller's goroutine is deepest inside
// amqp091-go's write, and a frame less here is a stack that need not grow
// for every call (docs/performance.md, "Held calls and goroutine stacks").
func (l *lane) publish(cl *call) {
	tag, err := l.prepare(cl)
	if err != nil {
		cl.resolve(outcome{err: err})
		return
	}
	err = l.ch.Publish(cl.exchange, cl.key, true, false, cl.msg)
	cl.msg = amqp.Publishing{} // a held call keeps no body or headers
	if err != nil {
		l.unpublished(cl, tag, err)
		return
	}
	cl.published.Store(true)
	if cl.span != nil {
		cl.span.AddEvent(gateway.EventPublished)
	}
	if l.c.afterPublish != nil {
		l.c.afterPublish(l.ch, cl.event)
	}
}

// prepare renders cl's message and registers cl for the broker's confirm
// under the delivery tag it returns, or returns why cl cannot be
// published.
func (l *lane) prepare(cl *call) (tag uint64, err error) {
	if l.s.blocked.Load() {
		// The broker blocked the connection: a write now could block in a
		// socket the broker no longer reads.
		return 0, l.s.blockedErr(gateway.ErrNotPublished)
	}
	// A content header larger than frame_max makes the broker close the
	// connection (FRAME_ERROR), failing every call on it: refuse this one
	// alone, unpublished (docs/wire-protocol.md, "Size of the headers").
	cl.msg = cl.pub()
	if err := amqpwire.FitsFrame(&cl.msg, l.frameMax); err != nil {
		cl.msg = amqp.Publishing{}
		return 0, fmt.Errorf("%w: %w", gateway.ErrHeadersTooLarge, err)
	}
	// Registered before the write: the broker's confirm may be handled by
	// run before this goroutine runs again.
	tag = l.ch.GetNextPublishSeqNo()
	cl.sentAt = time.Now()
	l.mu.Lock()
	l.unconfirmed[tag] = cl
	if cl.event {
		l.events[cl.msgID] = cl
	}
	l.mu.Unlock()
	return tag, nil
}

// unpublished undoes prepare for cl, whose write failed with err, and
// fails it.
func (l *lane) unpublished(cl *call, tag uint64, err error) {
	l.mu.Lock()
	delete(l.unconfirmed, tag)
	if cl.event {
		delete(l.events, cl.msgID)
	}
	l.mu.Unlock()
	// amqp091-go checks for a closed channel or connection before it
	// writes; any other error came from a write that may have gone out.
	sent := gateway.ErrChannelLost
	if errors.Is(err, amqp.ErrClosed) {
		sent = gateway.ErrNotPublished
	}
	cl.resolve(outcome{err: fmt.Errorf("%w: %w: publish: %v", gateway.ErrUnavailable, sent, err)})
}

// drainReturns handles the returns already notified. l.mu is held.
func (l *lane) drainReturns() {
	for {
		select {
		case r, ok := <-l.returns:
			if !ok {
				l.returns = nil
				return
			}
			l.returned(&r)
		default:
			return
		}
	}
}

// returned fails the rpc call of a returned message at once, or marks the
// event for its confirm. l.mu is held.
func (l *lane) returned(r *amqp.Return) {
	err := fmt.Errorf("%w: %w: exchange %q routing key %q: %d %s",
		gateway.ErrUnavailable, gateway.ErrUnroutable, r.Exchange, r.RoutingKey, r.ReplyCode, r.ReplyText)
	if r.CorrelationId != "" {
		// An rpc request: fail its call now rather than at its deadline.
		if cl := l.c.pending.take(r.CorrelationId); cl != nil {
			cl.resolve(outcome{err: err})
		} else if rs := l.c.streams.get(r.CorrelationId); rs != nil {
			rs.cl.resolve(outcome{err: err})
		}
		return
	}
	if cl := l.events[r.MessageId]; cl != nil {
		cl.returned = true // reported when its confirm arrives
	}
}

// confirm settles the call of a confirmed (or nacked) message. l.mu is held.
func (l *lane) confirm(conf amqp.Confirmation) {
	cl, ok := l.unconfirmed[conf.DeliveryTag]
	if !ok {
		return
	}
	delete(l.unconfirmed, conf.DeliveryTag)
	if f := l.c.cfg.OnConfirm; f != nil {
		f(time.Since(cl.sentAt), conf.Ack)
	}
	if cl.event {
		delete(l.events, cl.msgID)
	}
	l.noteConfirm(cl, conf.Ack)
	if conf.Ack {
		l.acks[dest{cl.exchange, cl.key}] = lastAck{sent: cl.sentAt, at: l.lastConfirm}
	}
	if cl.span != nil {
		cl.span.AddEvent(gateway.EventConfirmed, trace.WithAttributes(attribute.Bool("ack", conf.Ack)))
	}
	switch {
	case !conf.Ack:
		cl.resolve(outcome{err: fmt.Errorf("%w: %w", gateway.ErrUnavailable, gateway.ErrNacked)})
	case cl.event && cl.returned:
		cl.resolve(outcome{err: fmt.Errorf("%w: %w: exchange %q routing key %q",
			gateway.ErrUnavailable, gateway.ErrUnroutable, cl.exchange, cl.key)})
	case cl.event:
		cl.resolve(outcome{})
	}
	// An acked rpc request keeps waiting for its reply.
}
