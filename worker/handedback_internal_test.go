package worker

import (
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

// TestDiscountHeldRequests: a request the queue takes back from a live
// worker that held it — its node lost sight of the queue's leader, no
// connection lost — comes back charged; that charge is the worker's own,
// not a crash's, and it runs as a fresh request. Charges the worker did
// not cause stay: a request it never held, one it settled, one counted
// more often than it held it, and one it held longer ago than it
// remembers.
func TestDiscountHeldRequests(t *testing.T) {
	w := &Worker{}
	now := time.Now()
	w.discount(delivery("held", 0), now)
	w.discount(delivery("settled", 0), now)
	w.handed.settled("settled")
	w.discount(delivery("twice", 0), now)
	w.discount(delivery("old", 0), now.Add(-2*handedBackFor))

	later := now.Add(time.Second)
	cases := []struct {
		id         string
		count, got int64
	}{
		{"held", 1, 0},    // taken back while held: the worker's own charge
		{"settled", 1, 1}, // settled, then charged: another worker's crash
		{"never", 1, 1},   // never held here
		{"twice", 2, 1},   // held once, charged twice: one charge is a crash's
		{"", 1, 1},        // no message id: nothing to know it by
	}
	for _, c := range cases {
		d := delivery(c.id, c.count)
		w.discount(d, later)
		if got := countOf(t, d); got != c.got {
			t.Errorf("%q counted %d: discounted to %d; want %d", c.id, c.count, got, c.got)
		}
	}

	// The held request, settled twice (its two receipts), is forgotten.
	w.handed.settled("held")
	w.handed.settled("held")
	if _, ok := w.handed.held["held"]; ok {
		t.Error(`"held" remembered after both its receipts were settled`)
	}

	// Forgotten after handedBackFor: the sweep runs on a receipt once
	// handedBackFor has passed since the last.
	w.discount(delivery("sweep", 0), now.Add(handedBackFor+2*time.Second))
	d := delivery("old", 1)
	w.discount(d, now.Add(handedBackFor+3*time.Second))
	if got := countOf(t, d); got != 1 {
		t.Errorf("held %v ago, counted 1: discounted to %d; want 1 (forgotten)", 2*handedBackFor, got)
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
