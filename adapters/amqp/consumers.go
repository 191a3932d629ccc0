package amqp

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/gateway"
)

var _ gateway.ConsumerCounter = (*Client)(nil)

// settle is how long after figway reconnects a count of no consumer is
// taken as not known. A connection made because a node died goes to a node whose
// quorum queues may have just elected a new leader, which counts no
// consumer until the workers' channels have attached to it again: 1.3 s
// measured on RabbitMQ 3.10.8 under load, with the workers alive
// throughout (docs/errors.md, "No consumer").
const settle = 5 * time.Second

// Counts that are not known: a queue not looked at yet (on this
// connection), and one that does not exist.
const (
	unseen  = -1
	missing = -2
)

// consumers holds the consumer counts of the watched queues. The watch
// goroutine of the connection writes them; calls read them.
type consumers struct {
	mu     sync.RWMutex
	counts map[string]int // queue → consumers, or unknown
	// changed wakes the watch when the set of queues changes, or a call
	// asks for a fresh look (Recount), rather than at the next tick.
	changed chan struct{}
	// started and finished count the rounds of looks begun and ended;
	// ended is closed when the round in progress, or the next, ends.
	started, finished uint64
	ended             chan struct{}
}

func newConsumers() *consumers {
	return &consumers{counts: map[string]int{}, changed: make(chan struct{}, 1), ended: make(chan struct{})}
}

func (w *consumers) wake() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// WatchQueues replaces the set of queues whose consumers the client counts
// (see gateway.ConsumerCounter). A queue watched already keeps its count.
func (c *Client) WatchQueues(queues []string) {
	w := c.consumers
	w.mu.Lock()
	counts := make(map[string]int, len(queues))
	for _, q := range queues {
		n, ok := w.counts[q]
		if !ok {
			n = unseen
		}
		counts[q] = n
	}
	w.counts = counts
	w.mu.Unlock()
	w.wake()
}

// Recount returns once a round of looks at the watched queues that began
// after the call has ended, or when ctx is done (see
// gateway.ConsumerCounter): the gateway asks before it fails a call for
// want of a consumer, so that a worker that attached since the last look
// is seen. Rounds asked for this way are at least recountGap apart.
func (c *Client) Recount(ctx context.Context) {
	w := c.consumers
	w.mu.Lock()
	want := w.started + 1 // a round in progress may have looked already
	w.mu.Unlock()
	w.wake()
	for {
		w.mu.Lock()
		done, ended := w.finished >= want, w.ended
		w.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ended:
		case <-ctx.Done():
			return
		}
	}
}

// recountGap spaces the rounds that calls ask for: a flood of calls to a
// route with no consumer costs at most one passive declare per queue every
// recountGap, and each of those calls waits at most about that long.
const recountGap = 20 * time.Millisecond

func (w *consumers) begin() {
	w.mu.Lock()
	w.started++
	w.mu.Unlock()
}

func (w *consumers) end() {
	w.mu.Lock()
	w.finished = w.started
	close(w.ended)
	w.ended = make(chan struct{})
	w.mu.Unlock()
}

// Consumers returns the consumers queue had when last looked at, and
// whether that is known (see gateway.ConsumerCounter).
func (c *Client) Consumers(queue string) (n int, known bool) {
	w := c.consumers
	w.mu.RLock()
	n, ok := w.counts[queue]
	w.mu.RUnlock()
	if !ok || n < 0 {
		return 0, false
	}
	return n, true
}

func (w *consumers) queues() []string {
	w.mu.RLock()
	defer w.mu.RUnlock()
	qs := make([]string, 0, len(w.counts))
	for q := range w.counts {
		qs = append(qs, q)
	}
	slices.Sort(qs)
	return qs
}

// set records the count of queue, if it is still watched, and returns the
// one it replaces.
func (w *consumers) set(queue string, n int) (old int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	old, ok := w.counts[queue]
	if ok {
		w.counts[queue] = n
	}
	return old
}

// forget makes every count unseen: the connection that counted is gone.
func (w *consumers) forget() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for q := range w.counts {
		w.counts[q] = unseen
	}
}

// watchConsumers counts the consumers of the watched queues every
// ConsumerCheck, and at once when the set changes, with a passive
// queue.declare each on a channel of its own (RabbitMQ offers no
// notification of consumers coming and going without a plugin). It
// returns when ctx is cancelled or the connection is lost, leaving every
// count unknown. It logs a queue's changes between having consumers, none,
// and not existing, once each, not at every look.
func (c *Client) watchConsumers(ctx context.Context, conn *amqp.Connection, s *session) {
	w := c.consumers
	defer w.forget()
	// Set on a reconnect only: a first connection follows no failover.
	var settled time.Time
	if c.reconnects.Load() > 0 {
		settled = time.Now().Add(settle)
	}
	tick := time.NewTicker(c.cfg.ConsumerCheck)
	defer tick.Stop()
	var ch *amqp.Channel // nil until opened, and after the broker closed it
	for {
		began := time.Now()
		w.begin()
		for _, q := range w.queues() {
			if s.blocked.Load() || conn.IsClosed() {
				break // a blocked connection is not read: a declare would hang
			}
			if ch == nil {
				var err error
				if ch, err = conn.Channel(); err != nil {
					return // the connection is gone
				}
			}
			n := missing
			info, err := inspect(ch, q)
			var aerr *amqp.Error
			switch {
			case err == nil:
				n = info.Consumers
				if n == 0 && time.Now().Before(settled) {
					n = unseen // see settle
				}
			case errors.As(err, &aerr) && aerr.Code == amqp.NotFound:
				ch = nil // the broker closed the channel: a queue that does not exist is unknown, not idle
			case errors.As(err, &aerr) && !conn.IsClosed():
				// Another channel error (an exclusive queue of another
				// connection is RESOURCE_LOCKED): the count is unknown,
				// and the next look opens a new channel.
				ch = nil
				c.log.Debug("queue's consumers not counted", "queue", q, "error", err.Error())
			default:
				return // the connection is gone
			}
			c.noteConsumers(q, w.set(q, n), n)
		}
		w.end()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-w.changed:
			select {
			case <-ctx.Done():
				return
			case <-time.After(recountGap - time.Since(began)):
			}
		}
	}
}

// noteConsumers logs a queue's count when it crosses between none, some
// and missing.
func (c *Client) noteConsumers(queue string, old, n int) {
	switch {
	case n == 0 && old != 0:
		c.log.Warn("no consumer on queue: its rpc calls fail at once, or go to legacy", "queue", queue)
	case n > 0 && old == 0:
		c.log.Info("queue has consumers again", "queue", queue, "consumers", n)
	case n == missing && old != missing:
		c.log.Info("queue not found; its consumers are not counted", "queue", queue)
	}
}
