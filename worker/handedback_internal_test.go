package worker

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// delivery is a request with message id id as the queue delivers it,
// counted n times before.
func delivery(id string, n int64) *amqp.Delivery {
	return &amqp.Delivery{MessageId: id, Headers: amqp.Table{deliveryCountHeader: n}}
}

func countOf(t *testing.T, d *amqp.Delivery) int64 {
	t.Helper()
	n, ok := countHeader(d.Headers[deliveryCountHeader])
	if !ok {
		t.Fatalf("x-delivery-count %v: not a count", d.Headers[deliveryCountHeader])
	}
	return n
}

// TestDiscountOwnReceipts: a request the queue takes back from a live
// worker that received it lately — its node lost sight of the queue's
// leader, no connection lost, the request held or its ack on the way —
// comes back charged; that charge is the worker's own, not a crash's, and
// it runs as a fresh request. Charges the worker did not cause stay: a
// request it never received, one counted more often than it received it,
// the copy of one it set aside, one received longer ago than it remembers
// or more receipts ago than it keeps.
func TestDiscountOwnReceipts(t *testing.T) {
	w := &Worker{}
	now := time.Now()
	w.discount(delivery("evicted", 0), now)
	for i := range rememberReceipts - 1 { // the ring is full
		w.discount(delivery("filler-"+strconv.Itoa(i), 0), now)
	}
	for _, id := range []string{"held", "twice", "aside"} { // "evicted" goes first
		w.discount(delivery(id, 0), now)
	}
	w.handed.forget("aside") // acked for a copy of its own
	w.discount(delivery("old", 0), now.Add(-2*handedBackFor))

	later := now.Add(time.Second)
	cases := []struct {
		id         string
		count, got int64
	}{
		{"held", 1, 0},    // taken back from this worker: its own charge
		{"twice", 2, 1},   // received once, charged twice: one is a crash's
		{"aside", 1, 1},   // the copy, charged by whoever held it
		{"never", 1, 1},   // never received here
		{"", 1, 1},        // no message id: nothing to know it by
		{"old", 1, 1},     // received over handedBackFor ago
		{"evicted", 1, 1}, // over rememberReceipts receipts ago
	}
	for _, c := range cases {
		d := delivery(c.id, c.count)
		w.discount(d, later)
		if got := countOf(t, d); got != c.got {
			t.Errorf("%q counted %d: discounted to %d; want %d", c.id, c.count, got, c.got)
		}
	}
	if n := len(w.handed.ring); n != rememberReceipts {
		t.Errorf("%d receipts remembered; want %d", n, rememberReceipts)
	}
}

// TestDiscountLostSessions: a session that ended handed back what the
// worker held and had not yet taken from the consumer's buffer too; for a
// handedBackFor after it, each lost session takes one off every count.
func TestDiscountLostSessions(t *testing.T) {
	w := &Worker{}
	now := time.Now()
	w.handed.lost(now)
	d := delivery("buffered", 2)
	w.discount(d, now.Add(time.Second))
	if got := countOf(t, d); got != 1 {
		t.Errorf("one session lost, counted 2: discounted to %d; want 1", got)
	}
	d = delivery("later", 1)
	w.discount(d, now.Add(handedBackFor+time.Second))
	if got := countOf(t, d); got != 1 {
		t.Errorf("a session lost over %v ago, counted 1: discounted to %d; want 1", handedBackFor, got)
	}
}

// TestSessionThatNeverConsumedLostNothing: a session whose consume failed
// — the queue not declared yet, as when workers start before figway —
// handed nothing back, and its end counts for no discount. A restarted
// worker that had failed twice to consume took two off a poison request's
// count and ran it as a fresh one (test/cluster's TestPoisonRequest: 5
// crashes instead of 3).
func TestSessionThatNeverConsumedLostNothing(t *testing.T) {
	w := &Worker{}
	var sent atomic.Uint64
	for range 2 {
		s := &session{w: w, acks: newAcks(&ackLog{t: t, outstanding: map[uint64]bool{}}, 0, &sent)}
		s.end()
	}
	if n := w.handed.recent(time.Now()); n != 0 {
		t.Errorf("two sessions that never consumed: %d counted lost; want 0", n)
	}
	s := &session{w: w, acks: newAcks(&ackLog{t: t, outstanding: map[uint64]bool{}}, 0, &sent), consumed: true}
	s.end()
	if n := w.handed.recent(time.Now()); n != 1 {
		t.Errorf("a session that consumed, then ended: %d counted lost; want 1", n)
	}
}
