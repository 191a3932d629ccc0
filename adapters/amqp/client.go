package amqp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/resilience"
	"github.com/figway/figway/wire"
)

var _ gateway.Publisher = (*Client)(nil)

// Config configures a Client.
type Config struct {
	// URLs are tried in turn, starting again from the first after the last.
	URLs []string
	// Reply selects how replies come back: config.ReplyDirect (RabbitMQ's
	// direct reply-to, one consumer per channel) or config.ReplyQueue (one
	// exclusive, server-named queue per connection). If empty, direct.
	Reply config.ReplyMode
	// Channels is the number of lanes (AMQP channels) publishing. If 0, 4.
	Channels int
	// Heartbeat is the AMQP heartbeat interval; a silent connection is
	// declared dead after two missed heartbeats. If 0, 5s.
	Heartbeat time.Duration
	// DialTimeout bounds the TCP connect and AMQP handshake. If 0, 5s.
	DialTimeout time.Duration
	// Topology is declared after every connect, before any publish.
	Topology config.Topology
	// Backoff spaces reconnection attempts. If zero, 100ms to 10s.
	Backoff resilience.Backoff
	// Name is the connection name shown in the management UI. If empty,
	// "figway".
	Name   string
	Logger *slog.Logger // if nil, slog.Default()
	// TLS configures amqps:// connections; if nil, amqps:// verifies the
	// broker against the system's roots. amqp:// URLs ignore it.
	TLS *tls.Config
	// OnConfirm, if set, is called with the time from each publish to its
	// publisher confirm and whether the broker acked it (metrics). It runs
	// on the lane's goroutine and must not block.
	OnConfirm func(d time.Duration, ack bool)
}

// Client publishes requests to RabbitMQ and brings back their replies. It
// implements gateway.Publisher. Its connection lives inside Run; until Run
// has connected, and whenever the connection is lost, every call fails at
// once with gateway.ErrUnavailable.
type Client struct {
	cfg     Config
	log     *slog.Logger
	pending *pending
	sess    atomic.Pointer[session]
	next    atomic.Uint32 // round-robin over lanes

	unmatched  atomic.Uint64
	reconnects atomic.Uint64
}

// Stats is a snapshot of a Client's counters.
type Stats struct {
	Connected bool
	Blocked   bool
	// Pending is the number of rpc calls waiting for a reply.
	Pending int
	// UnmatchedReplies counts replies dropped because no call waited for
	// their correlation id (late, duplicate or forged).
	UnmatchedReplies uint64
	// Reconnects counts connections made after the first.
	Reconnects uint64
}

// New returns a Client. It connects nothing: Run does.
func New(cfg Config) *Client {
	if cfg.Reply == "" {
		cfg.Reply = config.ReplyDirect
	}
	if cfg.Channels <= 0 {
		cfg.Channels = 4
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.Name == "" {
		cfg.Name = "figway"
	}
	c := &Client{cfg: cfg, log: cfg.Logger, pending: newPending()}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c
}

// Ready reports whether the client is connected, with its topology declared
// and its reply consumers running, and the broker is not blocking it.
func (c *Client) Ready() bool {
	s := c.sess.Load()
	return s != nil && !s.blocked.Load()
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	s := c.sess.Load()
	return Stats{
		Connected:        s != nil,
		Blocked:          s != nil && s.blocked.Load(),
		Pending:          c.pending.len(),
		UnmatchedReplies: c.unmatched.Load(),
		Reconnects:       c.reconnects.Load(),
	}
}

// Call publishes req and waits for its reply; see gateway.Publisher.
func (c *Client) Call(ctx context.Context, exchange, key string, req *wire.Request) (*gateway.Reply, error) {
	l, err := c.lane()
	if err != nil {
		return nil, err
	}
	req.CorrelationID = wire.NewID()
	req.ReplyTo = l.replyTo
	cl := &call{
		exchange: exchange,
		key:      key,
		corrID:   req.CorrelationID,
		gone:     ctx.Done(),
		done:     make(chan outcome, 1),
		pub:      func() amqp.Publishing { return req.Publishing(time.Now()) },
	}
	c.pending.add(cl.corrID, cl)
	defer c.pending.remove(cl.corrID)

	o, err := c.await(ctx, l, cl)
	if err != nil {
		return nil, err
	}
	st, err := wire.ReplyStatus(o.reply.Headers)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", gateway.ErrBadReply, err)
	}
	return &gateway.Reply{Body: o.reply.Body, ContentType: o.reply.ContentType, Status: st}, nil
}

// Publish publishes req and waits for the broker's confirm; see
// gateway.Publisher.
func (c *Client) Publish(ctx context.Context, exchange, key string, req *wire.Request) error {
	l, err := c.lane()
	if err != nil {
		return err
	}
	cl := &call{
		exchange: exchange,
		key:      key,
		event:    true,
		msgID:    req.MessageID,
		gone:     ctx.Done(),
		done:     make(chan outcome, 1),
		pub:      func() amqp.Publishing { return req.Publishing(time.Now()) },
	}
	_, err = c.await(ctx, l, cl)
	return err
}

// await hands cl to l and waits for its outcome, the caller giving up, or
// the lane dying — whichever comes first.
func (c *Client) await(ctx context.Context, l *lane, cl *call) (outcome, error) {
	if err := l.submit(ctx, cl); err != nil {
		return outcome{}, err
	}
	select {
	case o := <-cl.done:
		return o, o.err
	case <-ctx.Done():
		return outcome{}, waitErr(ctx, cl.event)
	case <-l.dead:
		select {
		case o := <-cl.done: // resolved just before the lane died
			return o, o.err
		default:
			return outcome{}, l.lost()
		}
	}
}

func waitErr(ctx context.Context, event bool) error {
	what := "reply"
	if event {
		what = "publisher confirm"
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no %s before the deadline: %w", what, ctx.Err())
	}
	return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
}

// lane picks an open lane, round-robin.
func (c *Client) lane() (*lane, error) {
	s := c.sess.Load()
	if s == nil {
		return nil, fmt.Errorf("%w: not connected to RabbitMQ", gateway.ErrUnavailable)
	}
	if s.blocked.Load() {
		return nil, fmt.Errorf("%w: connection blocked by the broker: %s", gateway.ErrUnavailable, s.blockedReason())
	}
	n := uint32(len(s.lanes))
	start := c.next.Add(1)
	for i := range n {
		if l := s.lanes[(start+i)%n].Load(); l != nil && !l.isDead() {
			return l, nil
		}
	}
	return nil, fmt.Errorf("%w: no open channel", gateway.ErrUnavailable)
}

// deliver hands a reply to the call waiting for it, or counts it as
// unmatched. It never blocks: resolve writes to a buffered channel once.
func (c *Client) deliver(d *amqp.Delivery) {
	cl := c.pending.take(d.CorrelationId)
	if cl == nil {
		c.unmatched.Add(1)
		c.log.Debug("reply matches no waiting call", "correlation_id", d.CorrelationId)
		return
	}
	cl.resolve(outcome{reply: d})
}
