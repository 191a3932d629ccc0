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
	"go.opentelemetry.io/otel/trace"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/resilience"
	"github.com/figway/figway/wire"
)

var (
	_ gateway.Publisher   = (*Client)(nil)
	_ gateway.Reconnector = (*Client)(nil)
)

// ReplyMode selects how replies come back from RabbitMQ.
type ReplyMode string

const (
	// ReplyDirect uses RabbitMQ's direct reply-to, amq.rabbitmq.reply-to:
	// one consumer per channel, on the channel that publishes.
	ReplyDirect ReplyMode = "direct"
	// ReplyQueue declares one exclusive, server-named reply queue per
	// connection.
	ReplyQueue ReplyMode = "queue"
)

// Defaults of [Config], exported for the packages that document or apply
// them (config).
const (
	DefaultChannels    = 4
	DefaultHeartbeat   = 2 * time.Second
	DefaultDialTimeout = 5 * time.Second
)

// Config configures a Client.
type Config struct {
	// URLs are tried in turn, starting again from the first after the last.
	URLs []string
	// Reply selects how replies come back: ReplyDirect or ReplyQueue. If
	// empty, ReplyDirect.
	Reply ReplyMode
	// Channels is the number of lanes (AMQP channels) publishing. If 0, 4.
	Channels int
	// Heartbeat is the AMQP heartbeat interval (whole seconds on the wire;
	// the broker may lower it). amqp091-go ticks at half the interval and
	// declares a connection dead when nothing arrived for three ticks, so a
	// black-holed connection fails its calls within 1.5×Heartbeat. If 0, 2s.
	Heartbeat time.Duration
	// DialTimeout bounds the TCP connect and AMQP handshake. If 0, 5s.
	DialTimeout time.Duration
	// Topology is declared after every connect, before any publish.
	Topology Topology
	// Backoff spaces reconnection attempts. If zero, 100ms to 2s.
	Backoff resilience.Backoff
	// Name is the connection name shown in the management UI. If empty,
	// "figway".
	Name   string
	Logger *slog.Logger // if nil, slog.Default()
	// TLS configures amqps:// connections; if nil, amqps:// verifies the
	// broker against the system's roots. amqp:// URLs ignore it.
	TLS *tls.Config
	// ConsumerCheck is how often the consumers of the routes' queues are
	// counted (gateway.ConsumerCounter), with a passive queue.declare per
	// queue on a channel of its own. If 0, 500ms.
	ConsumerCheck time.Duration
	// OnConfirm, if set, is called with the time from each publish to its
	// publisher confirm and whether the broker acked it (metrics). It runs
	// on the lane's goroutine and must not block.
	OnConfirm func(d time.Duration, ack bool)
	// StallTimeout is how long publishes may wait on the connection with
	// no publisher confirm or nack at all arriving on it, while the broker
	// has not blocked it, before figway leaves the node as stalled: it
	// closes the connection, failing the calls waiting on it, and dials the
	// next URL (stall.go). If 0, 3s.
	StallTimeout time.Duration
	// Tracing records, on the recording span of each call's context, the
	// events gateway.EventPublished, gateway.EventConfirmed and
	// gateway.EventReplyReceived. If false, no span is looked at.
	Tracing bool
}

// Client publishes requests to RabbitMQ and brings back their replies. It
// implements gateway.Publisher. Its connection lives inside Run; until Run
// has connected, and whenever the connection is lost, every call fails at
// once with gateway.ErrUnavailable.
type Client struct {
	cfg     Config
	log     *slog.Logger
	pending *pending
	streams streams
	sess    atomic.Pointer[session]
	// consumers counts the consumers of the queues the gateway watches.
	consumers *consumers
	next      atomic.Uint32 // round-robin over lanes

	// afterPublish, if set (by tests only), runs on the lane's goroutine
	// right after each publish is written.
	afterPublish func(ch *amqp.Channel, event bool)

	unmatched   atomic.Uint64
	reconnects  atomic.Uint64
	republished atomic.Uint64
	renewed     atomic.Uint64 // channels renewed (renew.go)
	stuck       atomic.Uint64 // channels abandoned as stuck (stuck.go)
	stalls      atomic.Uint64 // connections left as stalled (stall.go)
	leftStalled atomic.Bool   // the last connection was left as stalled
	// declared says that a connection declared the topology, and
	// cancels the cancel exchange (declareFirst, redeclare).
	declared, cancels atomic.Bool
	redialing         atomic.Bool // see Redialing
	streamDuplicates  atomic.Uint64
}

// Stats is a snapshot of a Client's counters.
type Stats struct {
	Connected bool
	Blocked   bool
	// Node is host:port of the broker node figway is connected to, ""
	// while it is not: with several broker.urls, the one it reached.
	Node string
	// OpenChannels is the number of lanes whose channel is open.
	OpenChannels int
	// Pending is the number of rpc calls waiting for a reply.
	Pending int
	// Streams is the number of streams open, and StreamDuplicates counts
	// the replies of streams dropped as duplicates (a figway-seq already
	// received, or past the end).
	Streams          int
	StreamDuplicates uint64
	// UnmatchedReplies counts replies dropped because no call waited for
	// their correlation id (late, duplicate or forged).
	UnmatchedReplies uint64
	// Reconnects counts connections made after the first.
	Reconnects uint64
	// EventsRepublished counts events published a second time because
	// their channel died before their confirm.
	EventsRepublished uint64
	// ChannelsRenewed counts channels replaced because a queue kept
	// nacking their publishes (a quorum queue stuck on a dead leader:
	// docs/operations.md, "Running against a cluster").
	ChannelsRenewed uint64
	// DirectReplyTo says that calls ask for their replies through direct
	// reply-to. It is false in queue mode, and in direct mode while the
	// node has not yet delivered a direct reply (a RabbitMQ 4 node that
	// is still booting drops them): those calls' replies come through
	// the connection's reply queue.
	DirectReplyTo bool
	// Stalls counts the connections left because their node stalled:
	// publishes waited StallTimeout with no confirm arriving (a node cut
	// off by a network partition).
	Stalls uint64
	// ChannelsStuck counts the channels abandoned as stuck: a publish on
	// one went unconfirmed StallTimeout after a later publish to the same
	// destination, on another channel, was acked (RabbitMQ 3.10 after a
	// network partition); the calls on it failed as on a lost channel.
	ChannelsStuck uint64
}

// New returns a Client. It connects nothing: Run does.
func New(cfg Config) *Client {
	if cfg.Reply == "" {
		cfg.Reply = ReplyDirect
	}
	if cfg.Channels <= 0 {
		cfg.Channels = DefaultChannels
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Name == "" {
		cfg.Name = "figway"
	}
	if cfg.ConsumerCheck <= 0 {
		cfg.ConsumerCheck = 500 * time.Millisecond
	}
	c := &Client{cfg: cfg, log: cfg.Logger, pending: newPending(), consumers: newConsumers()}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c
}

// Ready reports whether the client is connected, with its topology declared
// and its reply consumers running, and the broker is not blocking it.
func (c *Client) Ready() bool {
	s := c.sess.Load()
	return s != nil && !s.blocked.Load() && !s.closing.Load()
}

// Redialing reports whether the client lost its connection and is dialing
// the next URL at once, before every URL has failed in turn; see
// gateway.Reconnector.
func (c *Client) Redialing() bool {
	if s := c.sess.Load(); s != nil && s.closing.Load() {
		return true // the connection is being lost: a redial follows at once
	}
	return c.redialing.Load() && !c.Ready()
}

// AwaitConnected returns nil once the client is Ready, or ctx's error; see
// gateway.Reconnector.
func (c *Client) AwaitConnected(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !c.Ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	s := c.sess.Load()
	open, node := 0, ""
	if s != nil {
		node = s.node
		for i := range s.lanes {
			if l := s.lanes[i].Load(); l != nil && !l.isDead() {
				open++
			}
		}
	}
	return Stats{
		OpenChannels:      open,
		Connected:         s != nil,
		Node:              node,
		Blocked:           s != nil && s.blocked.Load(),
		Pending:           c.pending.len(),
		Streams:           c.streams.len(),
		StreamDuplicates:  c.streamDuplicates.Load(),
		UnmatchedReplies:  c.unmatched.Load(),
		Reconnects:        c.reconnects.Load(),
		EventsRepublished: c.republished.Load(),
		ChannelsRenewed:   c.renewed.Load(),
		DirectReplyTo:     s != nil && s.direct.Load(),
		Stalls:            c.stalls.Load(),
		ChannelsStuck:     c.stuck.Load(),
	}
}

// Call publishes req and waits for its reply; see gateway.Publisher. An
// error wrapping gateway.ErrNotPublished says that req never reached the
// broker; one wrapping gateway.ErrChannelLost, that it was written and its
// channel or connection died before the reply.
func (c *Client) Call(ctx context.Context, exchange, key string, req *wire.Request) (*gateway.Reply, error) {
	l, err := c.lane()
	if err != nil {
		return nil, err
	}
	req.CorrelationID = wire.NewID()
	req.ReplyTo = l.replyAddress()
	cl := newCall(exchange, key, req)
	cl.corrID = req.CorrelationID
	if c.cfg.Tracing {
		cl.span = recording(ctx)
	}
	c.pending.add(cl.corrID, cl)
	defer c.pending.remove(cl.corrID)

	o, err := c.await(ctx, l, cl)
	if err != nil {
		if errors.Is(err, context.Canceled) && cl.published.Load() {
			c.sendCancel(l, req.Method, cl.corrID) // the caller went away
		}
		return nil, err
	}
	return reply(&o)
}

// reply returns the gateway's reply of the outcome of a call.
func reply(o *outcome) (*gateway.Reply, error) {
	st, err := wire.ReplyStatus(o.headers)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", gateway.ErrBadReply, err)
	}
	rep := &gateway.Reply{Body: o.body, ContentType: o.contentType, Status: st}
	if len(o.headers) > 0 {
		m, err := wire.ReplyMetadata(o.headers)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", gateway.ErrBadReply, err)
		}
		rep.Header, rep.Trailer, rep.HTTPStatus = m.Header, m.Trailer, m.HTTPStatus
	}
	return rep, nil
}

// Publish publishes req and waits for the broker's confirm; see
// gateway.Publisher.
//
// An event whose channel died under a live connection before its confirm
// came back (a channel error caused by another call on the same channel,
// say) is published once more, with the same message id, on another open
// channel, waiting at most laneWait (and never past ctx) for one. The
// broker may then hold it twice; consumers de-duplicate by message id. An
// event whose connection died fails at once instead — a new connection is
// a reconnect away, and callers are not kept waiting for one — as does one
// caught by a broker alarm, which holds every channel.
func (c *Client) Publish(ctx context.Context, exchange, key string, req *wire.Request) error {
	l, err := c.lane()
	if err != nil {
		return err
	}
	ev := newEvent(exchange, key, req)
	if c.cfg.Tracing {
		ev.span = recording(ctx)
	}
	_, err = c.await(ctx, l, ev)
	if !errors.Is(err, gateway.ErrChannelLost) && !errors.Is(err, gateway.ErrNotPublished) ||
		errors.Is(err, errBlocked) || l.conn.IsClosed() {
		return err
	}
	l2, lerr := c.otherLane(ctx, l)
	if lerr != nil {
		return err
	}
	c.republished.Add(1)
	c.log.Info("publishing an event again after losing its channel", "message_id", req.MessageID, "err", err)
	if _, err2 := c.await(ctx, l2, newEvent(exchange, key, req)); err2 != nil {
		return fmt.Errorf("%w (published again after: %v)", err2, err)
	}
	return nil
}

// await hands cl to l and waits for its outcome, the caller giving up, the
// lane dying or the broker blocking the connection — whichever comes first.
//
// The publish and the wait are two calls, not one function: a call's
// goroutine is deepest while amqp091-go writes the message, and every
// frame below that point counts (docs/performance.md, "Held calls and
// goroutine stacks").
func (c *Client) await(ctx context.Context, l *lane, cl *call) (outcome, error) {
	l.users.Add(1)
	defer l.users.Add(-1)
	blocking := *l.s.blocking.Load()
	if err := l.submit(ctx, cl); err != nil {
		return outcome{}, err
	}
	return l.wait(ctx, cl, blocking)
}

// wait waits for the outcome of cl, submitted to l when blocking was the
// session's blocking channel.
func (l *lane) wait(ctx context.Context, cl *call, blocking <-chan struct{}) (outcome, error) {
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
			return outcome{}, l.lost(cl)
		}
	case <-blocking:
		select {
		case o := <-cl.done:
			return o, o.err
		default:
		}
		// submit returned: cl was written (published) or failed already.
		if cl.published.Load() {
			return outcome{}, l.s.blockedErr(gateway.ErrChannelLost)
		}
		return outcome{}, l.s.blockedErr(gateway.ErrNotPublished)
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

// lane picks an open lane, round-robin. Its errors wrap
// gateway.ErrNotPublished: nothing was sent.
func (c *Client) lane() (*lane, error) {
	s := c.sess.Load()
	if s == nil {
		return nil, fmt.Errorf("%w: %w: not connected to RabbitMQ", gateway.ErrUnavailable, gateway.ErrNotPublished)
	}
	if s.blocked.Load() {
		return nil, s.blockedErr(gateway.ErrNotPublished)
	}
	if s.closing.Load() {
		return nil, fmt.Errorf("%w: %w: the connection to RabbitMQ is closing", gateway.ErrUnavailable, gateway.ErrNotPublished)
	}
	n := uint32(len(s.lanes))
	start := c.next.Add(1)
	var suspect *lane
	for i := range n {
		l := s.lanes[(start+i)%n].Load()
		if l == nil || l.isDead() || l.conn.IsClosed() {
			continue
		}
		if !l.suspect.Load() {
			return l, nil
		}
		suspect = l // a lane that may be stuck (stuck.go): the last resort
	}
	if suspect != nil {
		return suspect, nil
	}
	return nil, fmt.Errorf("%w: %w: no open channel", gateway.ErrUnavailable, gateway.ErrNotPublished)
}

// laneWait bounds how long an event waits for an open lane to publish it
// again: a lane that died under a live connection is reopened by the
// session within milliseconds.
const laneWait = 500 * time.Millisecond

// otherLane returns an open lane other than failed, polling for at most
// laneWait (and never past ctx) while the session reopens lanes.
func (c *Client) otherLane(ctx context.Context, failed *lane) (*lane, error) {
	give := time.Now().Add(laneWait)
	for {
		l, err := c.lane()
		if err == nil && l == failed {
			err = errors.New("no other open channel")
		}
		if err == nil || errors.Is(err, errBlocked) || time.Now().After(give) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// deliver hands a reply to the call or stream waiting for it, or counts it
// as unmatched. It never blocks: resolve writes to a buffered channel once,
// and a stream's receive only buffers.
func (c *Client) deliver(d *amqp.Delivery) {
	cl := c.pending.take(d.CorrelationId)
	if cl == nil {
		if rs := c.streams.get(d.CorrelationId); rs != nil {
			rs.receive(d)
			return
		}
		c.unmatched.Add(1)
		c.log.Debug("reply matches no waiting call", "correlation_id", d.CorrelationId)
		return
	}
	if cl.span != nil {
		cl.span.AddEvent(gateway.EventReplyReceived)
	}
	cl.resolve(outcome{body: d.Body, contentType: d.ContentType, headers: d.Headers})
}

// recording returns the span of ctx if it records, or nil.
func recording(ctx context.Context) trace.Span {
	if s := trace.SpanFromContext(ctx); s.IsRecording() {
		return s
	}
	return nil
}
