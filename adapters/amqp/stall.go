package amqp

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultStallTimeout is the default of [Config.StallTimeout].
const DefaultStallTimeout = 3 * time.Second

// stallChecks is how many times per StallTimeout the watch looks at the
// session. A stall is declared only after more looks than this in a row found
// publishes waiting and no confirm come: if figway's own process was
// starved (a loaded machine, a long pause), the ticker drops the ticks it
// missed, and the confirms that came meanwhile are counted before the
// watch has looked often enough.
const stallChecks = 10

// reconnectGrace is how long a connection made after a lost one serves
// before watchStalls judges it.
const reconnectGrace = 10 * time.Second

// stallCloseTimeout bounds the connection.close of a stalled node: it is
// alive and usually answers at once, but the socket is closed regardless
// once this has passed.
const stallCloseTimeout = 500 * time.Millisecond

// A node stalls when it keeps taking figway's publishes and confirms none
// of them, while its connection lives and its heartbeats flow: a node cut
// off from its cluster by a network partition, before it notices
// (net_ticktime) and pauses as the minority (docs/operations.md, "A
// partitioned node"). Its quorum queues can commit nothing, so nothing is
// confirmed, and replies do not come either. watchStalls leaves such a
// node: when publishes have waited StallTimeout on the connection with no
// confirm or nack at all arriving on it, and the broker has not blocked it
// (an alarm, which figway follows by itself), it closes the connection.
// Every call waiting on it fails at once, UNAVAILABLE, as on a lost
// connection — ErrChannelLost for those published, ErrNotPublished for the
// others — and Run dials the next of the URLs. It returns when ctx ends
// or it has closed the connection.
func (c *Client) watchStalls(ctx context.Context, conn *amqp.Connection, s *session) {
	bound := c.stallTimeout()
	tick := time.NewTicker(bound / stallChecks)
	defer tick.Stop()
	// Once figway has left a stalled node, it does not judge the next
	// connection; the one after is judged again. A partition that cut off
	// the node of a quorum queue's leader leaves the majority side without
	// it too until the nodes notice the partition (net_ticktime), and the
	// queue may stall again while the cut-off node rejoins: in
	// test/cluster's TestPartition the majority confirmed nothing for 5 to
	// more than 15 s after figway came. Leaving it as well would only fail
	// the calls published there, and a node cut off in turn pauses as the
	// minority (pause_minority), closing the connection.
	if c.leftStalled.Swap(false) {
		return
	}
	// Nor does it judge a connection made after one was lost before
	// reconnectGrace has passed: a node stopped or died, and the quorum
	// queues whose leaders it held elect new ones, which holds their
	// publishes' confirms meanwhile — RabbitMQ 3.10 took over 3 s in a
	// rolling restart under load, and a detector that left the node then
	// failed the retries of the calls the lost connection had failed (64
	// on a `retry: idempotent` route in test/cluster's TestRollingRestart).
	if c.reconnects.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(reconnectGrace):
		}
	}
	s.judged.Store(true)
	last, quiet, since := s.confirmed.Load(), 0, time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		confirmed, waiting := s.confirmed.Load(), s.unconfirmed()
		if confirmed != last || waiting == 0 || s.blocked.Load() {
			last, quiet, since = confirmed, 0, time.Now()
			continue
		}
		// The first look that found publishes waiting may have come just
		// after the first of them: one look more makes the wait at least
		// bound.
		if quiet++; quiet <= stallChecks || time.Since(since) < bound {
			continue
		}
		c.stalls.Add(1)
		c.leftStalled.Store(true)
		c.log.Warn("RabbitMQ node stalled: no publisher confirm while publishes wait; leaving it",
			"broker", s.node, "waiting", waiting, "for", time.Since(since).Round(time.Millisecond))
		conn.CloseDeadline(time.Now().Add(stallCloseTimeout))
		return
	}
}

// stallTimeout returns Config.StallTimeout, or its default.
func (c *Client) stallTimeout() time.Duration {
	if c.cfg.StallTimeout <= 0 {
		return DefaultStallTimeout
	}
	return c.cfg.StallTimeout
}

// unconfirmed returns the number of publishes on the session's lanes that
// wait for their confirm.
func (s *session) unconfirmed() int {
	n := 0
	for i := range s.lanes {
		if l := s.lanes[i].Load(); l != nil {
			l.mu.Lock()
			n += len(l.unconfirmed)
			l.mu.Unlock()
		}
	}
	return n
}

// declareFirst declares the topology and the cancel exchange on conn, the
// client's first connection, and reports whether cancels can be sent.
// Later connections declare it again in the background instead
// (redeclare).
func (c *Client) declareFirst(conn *amqp.Connection) (cancels bool, err error) {
	if err := declare(conn, c.cfg.Topology); err != nil {
		return false, err
	}
	c.declared.Store(true)
	cancels = c.declareCancel(conn)
	c.cancels.Store(cancels)
	return cancels, nil
}

// Once the client's first connection has declared the topology, a later
// one serves at once with it and declares it again in the background, on
// a connection of its own (redeclare): a declare — even of what exists —
// is a transaction of the whole cluster. While a partition goes unnoticed
// (until net_ticktime) it waits on every node, for a minute by default,
// when publishes to quorum queues on the majority side already work; and
// while a quorum queue elects a new leader after a node stopped, RabbitMQ
// 4.0 and 3.10 answer its declare with 541 INTERNAL_ERROR, which closes
// the whole connection — on the serving connection, that kept figway from
// serving for 3.5 s in a rolling restart, or took the calls published on
// it down with it.
//
// A later connection waits for the first attempt at most topologyWait
// before it serves: right after a full cluster restart a quorum queue is
// not found for a moment, and whoever declares it first decides what it
// becomes — a worker's declaration of the same name, had figway been
// ready first, made an empty queue of it, and the events it held before
// the restart were gone (TestFullClusterRestart on 4.0, three clean-clone
// runs); figway's own declaration brings it back with them.
const (
	topologyWait      = 500 * time.Millisecond
	redeclareEvery    = 500 * time.Millisecond
	redeclareAttempts = 120
)

// startRedeclare runs redeclare in a goroutine of wg and waits for its
// first attempt, at most topologyWait.
func (c *Client) startRedeclare(ctx context.Context, wg *sync.WaitGroup, addr string) {
	tried := make(chan struct{}, 1)
	wg.Go(func() { c.redeclare(ctx, addr, tried) })
	select {
	case <-tried:
	case <-time.After(topologyWait):
	}
}

// redeclare declares the topology and the cancel exchange again, on a
// connection of its own to the broker at addr, until it has or ctx ends.
func (c *Client) redeclare(ctx context.Context, addr string, tried chan<- struct{}) {
	defer close(tried) // once, after the first attempt or when giving up
	url := c.urlOf(addr)
	begin := time.Now()
	var err error
	for attempt := range redeclareAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(redeclareEvery):
			}
		}
		err = c.declareOn(ctx, url)
		if attempt == 0 {
			tried <- struct{}{}
		}
		if err == nil {
			c.log.Debug("topology declared again", "broker", addr, "after", time.Since(begin).Round(time.Millisecond))
			return
		}
		if ctx.Err() != nil {
			return
		}
	}
	c.log.Warn("topology not declared again; serving with the topology declared before", "broker", addr, "err", err)
}

// declareOn dials url and declares the topology and the cancel exchange on
// that connection; the connection is closed when ctx ends, which ends a
// declare the cluster holds.
func (c *Client) declareOn(ctx context.Context, url string) error {
	conn, err := c.dial(url, c.cfg.Name+" (topology)")
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.CloseDeadline(time.Now().Add(stallCloseTimeout)) })
	defer stop()
	defer conn.CloseDeadline(time.Now().Add(stallCloseTimeout))
	if err := declare(conn, c.cfg.Topology); err != nil {
		return err
	}
	c.cancels.Store(c.declareCancel(conn))
	return nil
}

// urlOf returns the URL of broker.urls that redact renders as addr.
func (c *Client) urlOf(addr string) string {
	for _, u := range c.cfg.URLs {
		if redact(u) == addr {
			return u
		}
	}
	return c.cfg.URLs[0]
}

// newReplyProbeBounded is newReplyProbe, bounded by firstProbe. The probe
// declares a queue: a metadata change, which waits while a partition goes
// unnoticed (see redeclare), on a node that has long finished its
// boot. A probe not set up within firstProbe is such a node's: the
// session's calls use direct reply-to at once, and newReplyProbeBounded
// returns a nil probe; the late probe is closed when it comes.
func (c *Client) newReplyProbeBounded(ls *lanes) (*replyProbe, error) {
	type probed struct {
		p   *replyProbe
		err error
	}
	done := make(chan probed, 1)
	var late atomic.Bool
	ls.closed.Go(func() {
		p, err := newReplyProbe(ls.conn)
		done <- probed{p, err}
		if late.Load() && p != nil {
			p.close()
		}
	})
	select {
	case r := <-done:
		return r.p, r.err
	case <-time.After(firstProbe):
	}
	late.Store(true)
	// The probe may have come in the meantime: then it is closed above
	// or here, never used.
	select {
	case r := <-done:
		if r.p != nil {
			r.p.close()
		}
	default:
	}
	ls.s.direct.Store(true)
	c.log.Warn("RabbitMQ is slow to set up the direct reply-to probe (metadata changes wait while a partition goes unnoticed); using direct reply-to",
		"broker", ls.s.node, "after", firstProbe)
	return nil, nil
}
