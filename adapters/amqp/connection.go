package amqp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/batchconn"
	"github.com/figway/figway/wire"
)

// A session is one connection's worth of lanes.
type session struct {
	lanes   []atomic.Pointer[lane]
	blocked atomic.Bool
	reason  atomic.Pointer[string]
	// blocking is closed when the broker blocks the connection, and
	// replaced by a fresh channel when it unblocks it: a call waiting on
	// the session learns of a block through the channel it saw when it
	// started.
	blocking atomic.Pointer[chan struct{}]
	// node is host:port of the broker node the connection goes to.
	node string
	// renew takes the lanes to renew (renew.go).
	renew chan *lane
	// cancels says that the cancel exchange exists (see sendCancel).
	cancels bool
	// closing is set once a lane learnt that the connection is closing:
	// the session is no longer Ready.
	closing atomic.Bool
	// cancelq takes the cancels of streams that figway failed on the
	// goroutine that consumes replies, which must not wait to publish
	// them (sendCancels).
	cancelq chan cancelReq
	// direct is set in direct mode once the node has delivered a direct
	// reply; until then calls ask for their replies on fallback, the
	// connection's reply queue (directcheck.go).
	direct   atomic.Bool
	fallback string
	// confirmed counts the confirms and nacks received on the connection
	// (watchStalls); judged is set once watchStalls judges the connection:
	// from then on a lane that stalls is no longer renewed (stuck.go), the
	// whole connection is left if it stays silent.
	confirmed atomic.Uint64
	judged    atomic.Bool
}

func newSession(lanes int) *session {
	s := &session{lanes: make([]atomic.Pointer[lane], lanes), renew: make(chan *lane, lanes),
		cancelq: make(chan cancelReq, cancelQueue)}
	ch := make(chan struct{})
	s.blocking.Store(&ch)
	return s
}

// setBlocked records a connection.blocked (active) or connection.unblocked
// notification. Only the serve loop calls it.
func (s *session) setBlocked(active bool, reason string) {
	s.reason.Store(&reason)
	if active == s.blocked.Load() {
		return
	}
	s.blocked.Store(active)
	if active {
		close(*s.blocking.Load())
	} else {
		ch := make(chan struct{})
		s.blocking.Store(&ch)
	}
}

func (s *session) blockedReason() string {
	if r := s.reason.Load(); r != nil && *r != "" {
		return *r
	}
	return "resource alarm"
}

// blockedErr is the error of a call the block caught; sent says whether
// its request may have reached the broker (ErrChannelLost) or not
// (ErrNotPublished).
func (s *session) blockedErr(sent error) error {
	return fmt.Errorf("%w: %w: %w: %s", gateway.ErrUnavailable, sent, errBlocked, s.blockedReason())
}

// errBlocked marks the errors of calls refused or ended because the broker
// blocked the connection.
var errBlocked = errors.New("connection blocked by the broker")

// Run connects, serves until the connection is lost, and reconnects, until
// ctx is cancelled. It returns nil after closing everything it opened.
func (c *Client) Run(ctx context.Context) error {
	return c.supervise(ctx, c.cfg.Name, &c.reconnects, &c.redialing, c.serve)
}

// supervise dials the broker as name and runs serve on each connection,
// reconnecting with backoff when it is lost, until ctx is cancelled;
// reconnects counts the connections after the first; redialing is true
// while a lost connection is being replaced by dialing the next URL at
// once. It returns nil after closing everything it opened.
func (c *Client) supervise(ctx context.Context, name string, reconnects *atomic.Uint64, redialing *atomic.Bool,
	serve func(context.Context, *amqp.Connection, string) error) error {
	if len(c.cfg.URLs) == 0 {
		return errors.New("amqp: no broker URL")
	}
	connected := false // a connection was made before this one
	// attempt counts the waits since the last connection that worked;
	// failed, the URLs that failed in a row since the last wait. A lost
	// connection or a failed dial goes on to the next URL at once — in a
	// cluster the other nodes are most likely up — and figway waits only
	// once every URL has failed in turn.
	attempt, failed := 0, 0
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			return nil
		}
		addr := redact(c.cfg.URLs[i%len(c.cfg.URLs)])
		conn, err := c.dial(c.cfg.URLs[i%len(c.cfg.URLs)], name)
		if err == nil {
			if connected {
				reconnects.Add(1)
			}
			connected = true
			started := time.Now()
			err = serve(ctx, conn, addr)
			if ctx.Err() != nil {
				return nil
			}
			if time.Since(started) > time.Second {
				// It worked: walk the whole list again before waiting. (A
				// connection lost within a second counts as a failure, or
				// a broker that drops every connection, or refuses the
				// topology, would have figway reconnect in a hot loop.)
				failed = 0
			}
			if time.Since(started) > 10*time.Second {
				attempt = 0 // it was a working connection: start backing off afresh
			}
			c.log.Warn("connection to RabbitMQ lost", "broker", addr, "connection", name, "err", err)
		} else {
			c.log.Warn("cannot connect to RabbitMQ", "broker", addr, "connection", name, "err", err)
		}
		if failed++; failed < len(c.cfg.URLs) {
			redialing.Store(connected)
			continue
		}
		redialing.Store(false)
		failed = 0
		wait := c.cfg.Backoff.Delay(attempt)
		attempt++
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (c *Client) dial(url, name string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(name)
	return amqp.DialConfig(url, amqp.Config{
		Heartbeat:       c.cfg.Heartbeat,
		Locale:          "en_US",
		Dial:            gatheredDial(c.cfg.DialTimeout),
		Properties:      props,
		TLSClientConfig: c.cfg.TLS,
	})
}

// gatheredDial is amqp091-go's dial with the connection's writes gathered
// (internal/batchconn): each publish is a write system call of its own in
// amqp091-go, and a lane's callers mostly find the socket busy. In make
// bench at c=64 it took figway-grpc from 7.2–7.7k to 8.0–8.6k calls/s and
// figway's CPU per call from 75–80 to 67–71 µs.
func gatheredDial(timeout time.Duration) func(network, addr string) (net.Conn, error) {
	dial := amqp.DefaultDial(timeout)
	return func(network, addr string) (net.Conn, error) {
		conn, err := dial(network, addr)
		if err != nil {
			return nil, err
		}
		return batchconn.New(conn, 0), nil
	}
}

// serve runs one connection: topology, reply consumer, lanes; it returns
// when the connection is lost or ctx is cancelled, after every goroutine it
// started has ended and the connection is closed.
func (c *Client) serve(ctx context.Context, conn *amqp.Connection, addr string) error {
	s := newSession(c.cfg.Channels)
	s.node = nodeOf(addr)
	// The consumer watch is waited for after the connection is closed: a
	// declare of its own stuck on a connection the broker blocked ends
	// only then.
	var watch sync.WaitGroup
	defer watch.Wait()
	defer s.closeAll(conn)
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 8))

	first := !c.declared.Load()
	if first {
		cancels, err := c.declareFirst(conn)
		if err != nil {
			return err
		}
		s.cancels = cancels
	} else {
		s.cancels = c.cancels.Load()
	}

	ctx, cancel := context.WithCancel(ctx)
	ls := &lanes{c: c, conn: conn, s: s, replyTo: wire.DirectReplyTo, died: make(chan *lane, c.cfg.Channels), closed: &watch}
	defer ls.wg.Wait() // runs after cancel: every lane has stopped
	defer cancel()
	if !first {
		c.startRedeclare(ctx, &ls.wg, addr)
	}

	if c.cfg.Reply == ReplyQueue {
		q, replies, err := replyQueue(conn)
		if err != nil {
			return err
		}
		ls.replyTo = q
		ls.wg.Go(func() { c.consumeReplies(ctx, conn, replies) })
	} else if err := c.checkDirectReplyTo(ctx, ls); err != nil {
		return err
	}
	if s.cancels {
		ls.wg.Go(func() { c.sendCancels(ctx, s) })
	}
	for i := range s.lanes {
		if err := ls.start(ctx, i, 0); err != nil {
			return err
		}
	}
	ls.wg.Go(func() { c.watchStalls(ctx, conn, s) })
	c.sess.Store(s)
	defer c.sess.Store(nil) // runs first: no new call picks a lane of this session
	watch.Go(func() { c.watchConsumers(ctx, conn, s) })
	c.log.Info("connected to RabbitMQ", "broker", addr, "channels", len(s.lanes), "reply", string(c.cfg.Reply))
	return c.hold(ctx, ls, closed, blocked)
}

// lanes runs the lanes of session s on conn, each in a goroutine of wg
// that ends with the context it was started with; a lane that stops on
// its own (its channel died) is sent on died.
type lanes struct {
	c       *Client
	conn    *amqp.Connection
	s       *session
	replyTo string
	wg      sync.WaitGroup
	died    chan *lane
	// closed runs goroutines that may wait on the broker until the
	// connection is closed; it is waited for after that (stall.go).
	closed *sync.WaitGroup
}

// start opens a lane in slot i, renewed renewals times before, and runs it.
func (ls *lanes) start(ctx context.Context, i, renewals int) error {
	l, err := ls.c.openLane(ls.conn, ls.s, ls.replyTo)
	if err != nil {
		return err
	}
	l.renewals = renewals
	ls.s.lanes[i].Store(l)
	ls.wg.Go(func() {
		l.run(ctx)
		select {
		case ls.died <- l:
		case <-ctx.Done():
		}
	})
	return nil
}

// hold keeps the lanes' session until ctx ends or the connection closes:
// it follows the broker's blocking of the connection, reopens a lane whose
// channel died under a live connection, and renews a lane the session
// asks to.
func (c *Client) hold(ctx context.Context, ls *lanes, closed <-chan *amqp.Error, blocked <-chan amqp.Blocking) error {
	s := ls.s
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-closed:
			if err == nil {
				return errors.New("connection closed")
			}
			return err
		case b, ok := <-blocked:
			if !ok {
				blocked = nil
				continue
			}
			c.setBlocked(s, b)
		case l := <-ls.died:
			// The channel died under a live connection (a channel error such
			// as publishing to a missing exchange, or the lane abandoned as
			// stuck): its calls have failed; open a new one in its place —
			// unless it was renewed, and its slot has a new lane already.
			if l.abandoned {
				ls.closed.Go(l.closeChannel)
			}
			i := s.slot(l)
			if ls.conn.IsClosed() || i < 0 {
				continue
			}
			if err := ls.start(ctx, i, 0); err != nil {
				return fmt.Errorf("reopen channel: %w", err)
			}
			c.log.Warn("reopened AMQP channel after a channel error", "lane", i)
		case l := <-s.renew:
			i := s.slot(l)
			if ls.conn.IsClosed() || i < 0 {
				continue
			}
			if err := ls.start(ctx, i, l.nextRenewals()); err != nil {
				return fmt.Errorf("renew channel: %w", err)
			}
			c.renewed.Add(1)
			ls.wg.Go(func() { l.retire(ctx) })
			c.logRenewed(l, i)
		}
	}
}

// setBlocked follows the broker's connection.blocked and unblocked. Every
// call waiting on the connection fails while it is blocked: the broker no
// longer reads what it publishes, and workers' replies are publishes that
// the same alarm blocks.
func (c *Client) setBlocked(s *session, b amqp.Blocking) {
	s.setBlocked(b.Active, b.Reason)
	if b.Active {
		c.log.Warn("RabbitMQ blocked the connection; refusing calls", "reason", b.Reason)
	} else {
		c.log.Info("RabbitMQ unblocked the connection")
	}
}

// closeTimeout bounds each step of closing a connection: a broker that
// blocked the connection (memory or disk alarm) does not read, so it would
// never answer channel.close or connection.close.
const closeTimeout = 2 * time.Second

// closeAll closes the session's channels, then its connection, in that
// order, each wait bounded by closeTimeout. It runs after every lane has
// stopped.
func (s *session) closeAll(conn *amqp.Connection) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range s.lanes {
			if l := s.lanes[i].Load(); l != nil {
				// Under the write token, as every use of the channel: a
				// caller may be publishing still. A write stuck on a
				// blocked connection ends when the connection closes
				// below, and gives the token back.
				l.write <- struct{}{}
				l.ch.Close()
				<-l.write
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(closeTimeout):
	}
	conn.CloseDeadline(time.Now().Add(closeTimeout))
	<-done // the connection's shutdown ends any channel.close still waiting
}

// replyQueue declares the connection's exclusive, server-named reply queue
// and starts consuming it on a channel of its own.
func replyQueue(conn *amqp.Connection) (string, <-chan amqp.Delivery, error) {
	ch, err := conn.Channel()
	if err != nil {
		return "", nil, fmt.Errorf("reply queue channel: %w", err)
	}
	q, err := queueOpts{autoDelete: true, exclusive: true}.declare(ch, "")
	if err != nil {
		return "", nil, fmt.Errorf("declare reply queue: %w", err)
	}
	d, err := consumeOpts{autoAck: true, exclusive: true}.consume(ch, q.Name)
	if err != nil {
		return "", nil, fmt.Errorf("consume reply queue: %w", err)
	}
	return q.Name, d, nil
}

// consumeReplies delivers the replies of the connection's reply queue. If
// its channel dies while the connection lives, replies can no longer arrive:
// it closes the connection so that every waiting call fails and Run starts
// afresh.
func (c *Client) consumeReplies(ctx context.Context, conn *amqp.Connection, replies <-chan amqp.Delivery) {
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-replies:
			if !ok {
				if ctx.Err() == nil && !conn.IsClosed() {
					c.log.Error("reply queue consumer stopped; reconnecting")
					conn.Close()
				}
				return
			}
			c.deliver(&d)
		}
	}
}

// redact renders an AMQP URL for logs: scheme, host and vhost, never the
// credentials.
// nodeOf returns host:port of a URL that redact wrote.
func nodeOf(redacted string) string {
	if u, err := url.Parse(redacted); err == nil {
		return u.Host
	}
	return redacted
}

func redact(raw string) string {
	u, err := amqp.ParseURI(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return fmt.Sprintf("%s://%s/%s", u.Scheme, net.JoinHostPort(u.Host, fmt.Sprint(u.Port)), u.Vhost)
}
