package amqp

import (
	"context"
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/wire"
)

// A RabbitMQ 4 node accepts AMQP connections before its boot is complete,
// and until it is, every reply published to a direct reply-to address of
// its clients is dropped: the broker hands such a reply only to a channel
// on a node it counts as running (rabbit_nodes:list_running), and a node
// counts itself as running only once its boot is complete: 50–100 ms after
// its listener opens on an idle node, longer on a loaded one. RabbitMQ 3.10
// delivers them all along.
// (docs/operations.md, "Running against a cluster".)
//
// So a session in direct mode does not take direct reply-to on trust: it
// first sends itself a reply through the node. If that comes back within
// firstProbe — on a booted node it takes a round trip — the session's calls
// use direct reply-to from the start. If not, they ask for their replies on
// the connection's own exclusive reply queue, which the node delivers to
// while booting, and the probe goes on in the background; once a reply
// comes back, new calls switch to direct reply-to.
const (
	firstProbe = 500 * time.Millisecond
	probeEvery = 50 * time.Millisecond
	// probeLimit bounds the background probe: a node that has not
	// finished booting by then stays on the reply queue for the rest of
	// the connection, which costs nothing but speed.
	probeLimit = 2 * time.Minute
)

// checkDirectReplyTo decides how the calls of ls's session ask for their
// replies (see above); it returns once they can be published, after at most
// firstProbe.
func (c *Client) checkDirectReplyTo(ctx context.Context, ls *lanes) error {
	if v, _ := ls.conn.Properties["version"].(string); strings.HasPrefix(v, "3.") {
		// RabbitMQ 3.x delivers direct replies while booting: it counts
		// a node as running from its database's view, not its boot state.
		// The probe would buy nothing there, and publishing to a direct
		// reply-to address is what crashes a 3.10 channel when the
		// broker cannot place the address, closing the whole connection
		// with 541 (docs/wire-protocol.md): not a risk to take for
		// nothing.
		ls.s.direct.Store(true)
		return nil
	}
	p, err := c.newReplyProbeBounded(ls)
	if err != nil || p == nil {
		return err
	}
	if p.await(ctx, firstProbe) {
		ls.s.direct.Store(true)
		p.close()
		return nil
	}
	q, replies, err := replyQueue(ls.conn)
	if err != nil {
		p.close()
		return err
	}
	ls.s.fallback = q
	ls.wg.Go(func() { c.consumeReplies(ctx, ls.conn, replies) })
	c.log.Warn("RabbitMQ node does not deliver direct replies yet (still booting?): replies come through a reply queue until it does",
		"broker", ls.s.node, "waited", firstProbe)
	start := time.Now()
	ls.wg.Go(func() {
		defer p.close()
		if !p.await(ctx, probeLimit) {
			if ctx.Err() == nil && !ls.conn.IsClosed() {
				c.log.Warn("RabbitMQ node still does not deliver direct replies: replies keep coming through a reply queue",
					"broker", ls.s.node, "waited", time.Since(start)+firstProbe)
			}
			return
		}
		ls.s.direct.Store(true)
		c.log.Info("RabbitMQ node delivers direct replies now", "broker", ls.s.node, "after", time.Since(start)+firstProbe)
	})
	return nil
}

// A replyProbe sends its own channel replies to its own direct reply-to
// address: it publishes a message that asks for a direct reply to a
// queue of its own, learns the address from the copy it gets back, and
// publishes to that address until a reply arrives — the worker's path.
type replyProbe struct {
	ch      *amqp.Channel
	replies <-chan amqp.Delivery // of amq.rabbitmq.reply-to
	bounced <-chan amqp.Delivery // of the probe's own queue
	id      string
	addr    string // the channel's direct reply-to address, once learnt
}

func newReplyProbe(conn *amqp.Connection) (*replyProbe, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("reply probe channel: %w", err)
	}
	p := &replyProbe{ch: ch, id: wire.NewID()}
	if err := p.start(); err != nil {
		ch.Close()
		return nil, fmt.Errorf("reply probe: %w", err)
	}
	return p, nil
}

func (p *replyProbe) start() error {
	var err error
	if p.replies, err = (consumeOpts{autoAck: true}).consume(p.ch, wire.DirectReplyTo); err != nil {
		return err
	}
	q, err := queueOpts{autoDelete: true, exclusive: true}.declare(p.ch, "")
	if err != nil {
		return err
	}
	if p.bounced, err = (consumeOpts{autoAck: true, exclusive: true}).consume(p.ch, q.Name); err != nil {
		return err
	}
	return p.ch.Publish("", q.Name, false, false, amqp.Publishing{ReplyTo: wire.DirectReplyTo, CorrelationId: p.id})
}

// await publishes the probe's reply every probeEvery until one arrives,
// and reports whether one did within the time given.
func (p *replyProbe) await(ctx context.Context, within time.Duration) bool {
	timeout := time.NewTimer(within)
	defer timeout.Stop()
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		select {
		case d, ok := <-p.bounced:
			if !ok {
				return false
			}
			p.addr = d.ReplyTo
			p.send()
		case d, ok := <-p.replies:
			if !ok {
				return false
			}
			if d.CorrelationId == p.id {
				return true
			}
		case <-tick.C:
			p.send()
		case <-timeout.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// send publishes a reply to the probe's address, once it is known. A
// failed publish is a closed channel, which await learns of from its
// consumers.
func (p *replyProbe) send() {
	if p.addr != "" {
		_ = p.ch.Publish("", p.addr, false, false, amqp.Publishing{CorrelationId: p.id})
	}
}

// close closes the probe's channel, and with it its queue.
func (p *replyProbe) close() { p.ch.Close() }

// replyAddress is the reply_to of a call published on l now: the lane's
// own (direct reply-to or the connection's reply queue), except while a
// session in direct mode waits for its node to deliver direct replies.
func (l *lane) replyAddress() string {
	if l.replyTo == wire.DirectReplyTo && !l.s.direct.Load() {
		return l.s.fallback
	}
	return l.replyTo
}
