package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/wire"
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
// counted first. Before it runs one, it sets the other held suspects aside
// (setAside): copies of them go to the queue's tail, carrying their count,
// and the originals are acked, so that a crash charges the suspect that
// ran and nothing beside it; a delivery that comes while the suspect runs
// waits for it. A new session starts narrow for firstLook, since a
// restarted worker is the first to receive what its crashed predecessor
// held. A session widens again once no suspect has come for
// quarantineFor (firstLook, when none came at all), when a fresh delivery
// comes or the time is up: the bursts that charge innocent requests come
// right after a crash, and a worker that widened in between would take
// the next one. The price: after a connection was lost somewhere, a worker
// runs one request at a time for a couple of seconds. Replacing the
// consumer to change its prefetch has a cost of its own, which is why a
// session does it as seldom as it can: a delivery on its way to the
// cancelled consumer goes back to the queue, counted (RabbitMQ 3.10
// returns a burst of them), and a restarted worker that widened on its
// first fresh delivery and narrowed again at the next suspect charged
// innocent requests more than the crashes did.
type quarantine struct {
	held    []*amqp.Delivery // suspects waiting to run alone
	narrow  bool             // the channel's prefetch is 1
	alone   bool             // a suspect is running
	waiting []amqp.Delivery  // deliveries that came while it ran
	until   time.Time        // the prefetch stays narrow until then
	timer   *time.Timer      // fires at until (see widenAt)
	// asideAgain: no set-aside before then, after one failed.
	asideAgain time.Time
}

// quarantineFor is how long a session stays narrow after its last suspect
// arrived: longer than a supervisor takes to restart a crashed worker.
const quarantineFor = 2 * time.Second

// firstLook is how long a new session stays narrow if no suspect comes:
// what a crashed predecessor held is at the head of the queue, and comes
// first.
const firstLook = 250 * time.Millisecond

// widening reports whether the session is narrow with no suspect held or
// running: it widens once q.until has passed.
func (q *quarantine) widening() bool { return q.narrow && len(q.held) == 0 && !q.alone }

// suspect reports whether d was delivered before, as its queue counts.
func suspect(d *amqp.Delivery) bool {
	n, ok := deliveryCount(d)
	return ok && n > 0
}

// reconsume replaces the consumer whose deliveries come on old with one of
// prefetch n: the only way to change a consumer's prefetch. The
// deliveries the old consumer had received stay the session's: they come
// out of old before it closes, and are returned in pending, to be
// dispatched before the new ones.
//
// Widening, the new consumer starts before the old one is cancelled, so
// the queue never counts no consumer in between — figway refuses calls at
// once for want of one, and every new session widens a quarter second
// after it starts. Narrowing, the old one is cancelled first: while both
// were there, the wide one would keep taking deliveries until its cancel,
// all of them held beside the suspect, and charged if it crashes the
// worker. A narrowing follows a redelivery, and figway may see no
// consumer for that moment.
func (s *session) reconsume(old <-chan amqp.Delivery, n int) (deliveries <-chan amqp.Delivery, pending []amqp.Delivery, err error) {
	s.mu.Lock()
	if n > s.prefetch {
		deliveries, err = s.consumeBeforeCancel(n)
	} else {
		deliveries, err = s.cancelBeforeConsume(n)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	for d := range old {
		pending = append(pending, d)
	}
	return deliveries, pending, nil
}

// consumeBeforeCancel starts a consumer of prefetch n, then cancels the
// one before it. s.mu is held.
func (s *session) consumeBeforeCancel(n int) (<-chan amqp.Delivery, error) {
	oldTag := s.tag
	deliveries, err := s.consumeWith(n)
	if err != nil {
		return nil, err
	}
	if err := s.ch.Cancel(oldTag, false); err != nil {
		return nil, fmt.Errorf("cancel the consumer replaced by one of prefetch %d: %w", n, err)
	}
	return deliveries, nil
}

// cancelBeforeConsume cancels the consumer, then starts one of prefetch n.
// s.mu is held.
func (s *session) cancelBeforeConsume(n int) (<-chan amqp.Delivery, error) {
	if err := s.ch.Cancel(s.tag, false); err != nil {
		return nil, fmt.Errorf("cancel the consumer to set prefetch %d: %w", n, err)
	}
	return s.consumeWith(n)
}

// hold takes suspect d into quarantine, narrowing the prefetch to 1 if it
// is wider: deliveries is the consumer's channel, replaced if so.
func (s *session) hold(d *amqp.Delivery, deliveries <-chan amqp.Delivery) (<-chan amqp.Delivery, []amqp.Delivery, error) {
	q := &s.q
	q.held = append(q.held, d)
	q.until = time.Now().Add(quarantineFor)
	if q.narrow {
		return deliveries, nil, nil
	}
	q.narrow = true
	n, _ := deliveryCount(d)
	s.w.log.Info("redelivered request: prefetch narrowed to 1", "queue", s.w.cfg.Queue,
		"correlation_id", d.CorrelationId, "delivery_count", n)
	return s.reconsume(deliveries, 1)
}

// widenAt returns a channel that fires when the narrow session may widen,
// or nil: it widens when its time is up even if nothing comes, since a long
// request may hold its only prefetch slot.
func (s *session) widenAt() <-chan time.Time {
	if !s.q.widening() {
		return nil
	}
	if s.q.timer == nil {
		s.q.timer = time.NewTimer(time.Until(s.q.until))
	} else {
		s.q.timer.Reset(time.Until(s.q.until))
	}
	return s.q.timer.C
}

// widen restores the configured prefetch if the quarantine is over: no
// suspect held or running, and none seen for quarantineFor.
func (s *session) widen(deliveries <-chan amqp.Delivery) (<-chan amqp.Delivery, []amqp.Delivery, error) {
	q := &s.q
	if !q.widening() || time.Now().Before(q.until) {
		return deliveries, nil, nil
	}
	q.narrow = false
	s.w.log.Info("no redelivered request for a while: prefetch widened", "queue", s.w.cfg.Queue, "prefetch", s.w.cfg.Prefetch)
	return s.reconsume(deliveries, s.w.cfg.Prefetch)
}

// nextAlone returns the held suspect to run now, alone, or nil: one runs
// only when no handler of the session runs and no finished request waits
// for its ack. The other held suspects are set aside first, so that the
// one run is the only request the session holds if it crashes the worker.
// The caller runs it and calls doneAlone when it returns.
func (s *session) nextAlone() *amqp.Delivery {
	q := &s.q
	s.awaited.Store(len(q.held) > 0 && !q.alone)
	if len(q.held) == 0 || q.alone || s.running.Load() > 0 {
		return nil
	}
	s.awaited.Store(false)
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
	if len(q.held) > 0 {
		before := len(q.held)
		q.held = s.setAside(q.held)
		s.w.log.Info("redelivered requests set aside while one runs alone", "queue", s.w.cfg.Queue,
			"set_aside", before-len(q.held), "kept", len(q.held), "running", d.CorrelationId, "delivery_count", n)
	}
	// Acks gathered for requests already answered go out first: a request
	// the broker still counts as unacked would be charged too if the
	// suspect crashes the worker.
	s.flushAcks(true)
	q.alone = true
	return d
}

// asideTimeout bounds the wait for the broker to confirm the copies of
// the suspects set aside: the dispatch loop waits, and a quorum queue
// electing a leader (a node restarting) holds or refuses publishes for
// seconds. A copy confirmed later is a duplicate, which at-least-once
// allows. After a failed set-aside, the session holds its suspects
// instead for quarantineFor.
const asideTimeout = 500 * time.Millisecond

// setAside hands the held suspects back to the queue as copies and acks
// them, returning those it could not: the queue counts a delivery against
// every request a dying worker held, and a suspect held while another
// runs would be charged for that one's crash — after MaxDeliveries such
// crashes it would be refused as poison with it. A copy carries the count
// in figway-delivery-count and goes to the queue's tail; it is acked only
// once the broker has confirmed its copy, so nothing is lost (a crash in
// between delivers it twice, as at-least-once allows). A suspect whose
// deadline has passed, or that names a user_id (which a copy published as
// this worker could not keep), stays held.
func (s *session) setAside(held []*amqp.Delivery) (kept []*amqp.Delivery) {
	if len(held) == 0 || time.Now().Before(s.q.asideAgain) {
		return held
	}
	defer func() {
		if len(kept) > 0 {
			s.q.asideAgain = time.Now().Add(quarantineFor)
		}
	}()
	if err := s.openAside(); err != nil {
		s.w.log.Warn("suspects not set aside: they stay held", "queue", s.w.cfg.Queue, "error", err.Error())
		return held
	}
	type copied struct {
		d  *amqp.Delivery
		dc *amqp.DeferredConfirmation
	}
	var sent []copied
	now := time.Now()
	for _, d := range held {
		p, ok := asideCopy(d, now)
		if !ok {
			kept = append(kept, d)
			continue
		}
		dc, err := s.aside.PublishWithDeferredConfirm("", s.w.cfg.Queue, false, false, p)
		if err != nil {
			kept = append(kept, d)
			continue
		}
		sent = append(sent, copied{d, dc})
	}
	ctx, cancel := context.WithTimeout(context.Background(), asideTimeout)
	defer cancel()
	for _, c := range sent {
		if ok, err := c.dc.WaitContext(ctx); !ok || err != nil {
			// Not confirmed: the original stays held. A copy confirmed
			// late is a duplicate, which at-least-once allows.
			kept = append(kept, c.d)
			continue
		}
		s.mu.Lock()
		err := s.acks.finish(c.d.DeliveryTag, now, true, s.armAcks)
		s.mu.Unlock()
		if err != nil {
			// The channel is gone: the session ends, and the queue has
			// the original back as well as the copy.
			kept = append(kept, c.d)
			continue
		}
		s.w.handed.forget(c.d.MessageId)
		s.w.stats.setAside.Add(1)
	}
	return kept
}

// openAside opens the confirm-mode channel that setAside publishes on,
// unless it is open already.
func (s *session) openAside() error {
	if s.aside != nil && !s.aside.IsClosed() {
		return nil
	}
	s.aside = nil
	ch, err := s.conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return err
	}
	s.aside = ch
	return nil
}

// asideCopy returns the copy of d that setAside publishes, or false if d
// should stay held: its deadline has passed, or it names a user_id.
func asideCopy(d *amqp.Delivery, now time.Time) (amqp.Publishing, bool) {
	if d.UserId != "" {
		return amqp.Publishing{}, false
	}
	expiration := d.Expiration
	deadline, ok, err := wire.Deadline(d.Headers)
	if err == nil && ok {
		left := deadline.Sub(now)
		if left <= 0 {
			return amqp.Publishing{}, false
		}
		expiration = strconv.FormatInt(int64((left+time.Millisecond-1)/time.Millisecond), 10)
	}
	n, _ := deliveryCount(d)
	h := make(amqp.Table, len(d.Headers)+1)
	for k, v := range d.Headers {
		if strings.HasPrefix(k, "x-") { // the broker's: delivery count, deaths
			continue
		}
		h[k] = v
	}
	h[carriedCountHeader] = n
	return amqp.Publishing{
		Headers:         h,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      expiration,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}, true
}

// doneAlone records that the suspect nextAlone returned is done, and
// returns the deliveries that waited for it.
func (s *session) doneAlone() []amqp.Delivery {
	s.q.alone = false
	waited := s.q.waiting
	s.q.waiting = nil
	return waited
}
