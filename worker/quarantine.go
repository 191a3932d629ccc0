package worker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The quarantine keeps a poison request from taking other requests down
// with it.
//
// A worker that dies hands back every request it held unacked, and the
// quorum queue counts a delivery against each (x-delivery-count) — the
// innocent requests that happened to be in its prefetch as much as the one
// that crashed it. Returned requests go to the head of the queue, and a
// worker with free prefetch takes a burst of them: if the poison request
// is in the burst, the others are charged again when it crashes the next
// worker, and after a few crashes they would be refused as poison too
// (MaxDeliveries), their callers answered INTERNAL.
//
// So a session treats a delivery that was delivered before (a suspect) as
// possibly poison: it narrows its prefetch to 1, so the broker sends it
// nothing more while it holds one; it runs a suspect only when nothing
// else of it runs or waits for an ack, and starts nothing else until the
// suspect is done; and it runs held suspects one at a time, the least
// counted first. A new session starts narrow, since a restarted worker is
// the first to receive what its crashed predecessor held. It widens again
// on the first delivery that is not a suspect, once no suspect has come
// for quarantineFor: the bursts that charge innocent requests come right
// after a crash, and a worker that widened in between would take the next
// one. (A new session widens on its first fresh delivery: holding it
// narrow longer would make every worker of a classic queue, which counts
// nothing, run one request at a time after each connect.) The price is
// paid only after a connection was lost somewhere: the requests it hands
// back run one at a time. Restarting the consumer to change its prefetch
// has a cost of its own: a delivery on its way to the cancelled consumer
// may go back to the queue, counted.
type quarantine struct {
	held     []*amqp.Delivery // suspects waiting to run alone
	narrow   bool             // the channel's prefetch is 1
	alone    bool             // a suspect is running
	lastSeen time.Time        // when the last suspect arrived
}

// quarantineFor is how long a session stays narrow after its last suspect
// arrived: longer than a supervisor takes to restart a crashed worker.
const quarantineFor = 2 * time.Second

// suspect reports whether d was delivered before, as its queue counts.
func suspect(d *amqp.Delivery) bool {
	n, ok := deliveryCount(d)
	return ok && n > 0
}

// reconsume cancels the consumer whose deliveries come on old and consumes
// again with prefetch n: the only way to change a consumer's prefetch.
// The deliveries the old consumer had received stay the session's: they
// come out of old before it closes, and are returned in pending, to be
// dispatched before the new ones.
func (s *session) reconsume(old <-chan amqp.Delivery, n int) (deliveries <-chan amqp.Delivery, pending []amqp.Delivery, err error) {
	s.mu.Lock()
	err = s.ch.Cancel(s.tag, false)
	s.mu.Unlock()
	if err != nil {
		return nil, nil, fmt.Errorf("cancel the consumer to set prefetch %d: %w", n, err)
	}
	for d := range old {
		pending = append(pending, d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	deliveries, err = s.consumeWith(n)
	return deliveries, pending, err
}

// hold takes suspect d into quarantine, narrowing the prefetch to 1 if it
// is wider: deliveries is the consumer's channel, replaced if so.
func (s *session) hold(d *amqp.Delivery, deliveries <-chan amqp.Delivery) (<-chan amqp.Delivery, []amqp.Delivery, error) {
	q := &s.q
	q.held = append(q.held, d)
	q.lastSeen = time.Now()
	if q.narrow {
		return deliveries, nil, nil
	}
	q.narrow = true
	return s.reconsume(deliveries, 1)
}

// widen restores the configured prefetch if the quarantine is over: no
// suspect held or running, and none seen for quarantineFor.
func (s *session) widen(deliveries <-chan amqp.Delivery) (<-chan amqp.Delivery, []amqp.Delivery, error) {
	q := &s.q
	if !q.narrow || len(q.held) > 0 || q.alone || time.Since(q.lastSeen) < quarantineFor {
		return deliveries, nil, nil
	}
	q.narrow = false
	return s.reconsume(deliveries, s.w.cfg.Prefetch)
}

// nextAlone returns the held suspect to run now, alone, or nil: one runs
// only when no handler of the session runs and no finished request waits
// for its ack. The caller runs it and calls doneAlone when it returns.
func (s *session) nextAlone() *amqp.Delivery {
	q := &s.q
	if len(q.held) == 0 || q.alone || s.running.Load() > 0 {
		return nil
	}
	// Acks gathered for requests already answered go out first: a request
	// the broker still counts as unacked would be charged too if the
	// suspect crashes the worker.
	s.flushAcks(true)
	least := slices.MinFunc(q.held, func(a, b *amqp.Delivery) int {
		na, _ := deliveryCount(a)
		nb, _ := deliveryCount(b)
		return int(na - nb)
	})
	n, _ := deliveryCount(least)
	// Among the least counted, any: the order of a burst is the order
	// the crashed worker held them in, and the same requests would
	// follow the poison one every time.
	var ties []int
	for i, d := range q.held {
		if m, _ := deliveryCount(d); m == n {
			ties = append(ties, i)
		}
	}
	i := ties[rand.N(len(ties))]
	d := q.held[i]
	q.held = slices.Delete(q.held, i, i+1)
	q.alone = true
	return d
}

// doneAlone records that the suspect nextAlone returned is done.
func (s *session) doneAlone() { s.q.alone = false }
