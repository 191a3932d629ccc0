package worker

import (
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// handedBack remembers when the worker's sessions ended — a connection
// lost to a node restarting, a network fault — handing back to the queue
// every request they held unsettled, each charged a delivery as a crashed
// worker's would be. Those charges are the worker's own connections', not
// crashes': a live worker that lost its connection k times in the last
// handedBackFor takes up to k off each request's count (discount), so that
// a request is no suspect of poison for them — it runs like a fresh one,
// not alone (see quarantine.go) — and is not refused as poison after three
// node restarts. Without this, a rolling restart of a 3-node cluster on
// 3.10 had the worker refuse hundreds of requests as poison, and drop the
// events among them. The price: a poison request that crashed other
// workers may crash this one once more, whose restarted process remembers
// nothing and refuses it.
type handedBack struct {
	mu     sync.Mutex
	losses []time.Time
}

// handedBackFor is how long a lost connection is remembered.
const handedBackFor = time.Minute

// lost records a session that ended at now.
func (h *handedBack) lost(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.losses = append(h.prune(now), now)
}

// recent returns how many sessions ended within handedBackFor of now.
func (h *handedBack) recent(now time.Time) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.losses = h.prune(now)
	return int64(len(h.losses))
}

func (h *handedBack) prune(now time.Time) []time.Time {
	i := 0
	for i < len(h.losses) && now.Sub(h.losses[i]) > handedBackFor {
		i++
	}
	return h.losses[i:]
}

// discount takes off d's count the deliveries this worker's own lost
// connections may have charged it (see handedBack): x-delivery-count is
// rewritten in d's headers, here only, never below 0. What a set-aside
// copy carries (another worker's charges) stays.
func (w *Worker) discount(d *amqp.Delivery, now time.Time) {
	queued, ok := countHeader(d.Headers[deliveryCountHeader])
	if !ok || queued == 0 {
		return
	}
	if n := w.handed.recent(now); n > 0 {
		d.Headers[deliveryCountHeader] = max(queued-n, 0)
	}
}
