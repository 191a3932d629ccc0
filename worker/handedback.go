package worker

import (
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// handedBack remembers what the worker's own faults handed back to the
// queue, each request charged a delivery as a crashed worker's would be:
//
//   - when its sessions ended — a connection lost to a node restarting, a
//     network fault — handing back every request they held unsettled;
//   - by message id, the requests it received and has not settled: a
//     quorum queue also takes back, charged, what a live worker holds when
//     the worker's node loses sight of the queue's leader for a moment (the
//     links between two nodes closing), with no connection lost at all.
//
// Those charges are the worker's own, not crashes': a live worker takes
// them off each request's count (discount) — as many as it holds the
// request unsettled, or as many sessions as it lost in the last
// handedBackFor, whichever is more — so that a request is no suspect of
// poison for them: it runs like a fresh one, not alone (see
// quarantine.go), and is not refused as poison after three node restarts.
// Without this, a rolling restart of a 3-node cluster on 3.10 had the
// worker refuse hundreds of requests as poison, and drop the events among
// them; and when the links of its node closed, the worker ran the 128
// requests it had held one at a time, then their set-aside copies, and
// callers waited 10–20 s. The price: a poison request that crashed other
// workers may crash this one once more, whose restarted process remembers
// nothing and refuses it.
type handedBack struct {
	mu     sync.Mutex
	losses []time.Time
	held   map[string]receipts // message id → this worker's receipts not settled
	swept  time.Time           // when held was last pruned
}

// receipts counts a request's receipts not settled, and when the last was.
type receipts struct {
	n    int64
	last time.Time
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

// receive records a receipt of the request with message id id, and
// returns how many receipts of it were not settled before this one.
func (h *handedBack) receive(id string, now time.Time) (unsettled int64) {
	if id == "" {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held == nil {
		h.held, h.swept = make(map[string]receipts), now
	}
	if now.Sub(h.swept) > handedBackFor {
		// A receipt never settled — its session ended, and the request
		// went to another worker — is forgotten after handedBackFor.
		for k, r := range h.held {
			if now.Sub(r.last) > handedBackFor {
				delete(h.held, k)
			}
		}
		h.swept = now
	}
	r := h.held[id]
	unsettled = r.n
	h.held[id] = receipts{n: r.n + 1, last: now}
	return unsettled
}

// settled records that a receipt of the request with message id id was
// settled: acked or rejected.
func (h *handedBack) settled(id string) {
	if id == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch r, ok := h.held[id]; {
	case !ok:
	case r.n <= 1:
		delete(h.held, id)
	default:
		h.held[id] = receipts{n: r.n - 1, last: r.last}
	}
}

// discount records the receipt of d and takes off its count the
// deliveries this worker's own faults may have charged it (see
// handedBack): x-delivery-count is rewritten in d's headers, here only,
// never below 0. What a set-aside copy carries (another worker's charges)
// stays.
func (w *Worker) discount(d *amqp.Delivery, now time.Time) {
	held := w.handed.receive(d.MessageId, now)
	queued, ok := countHeader(d.Headers[deliveryCountHeader])
	if !ok || queued == 0 {
		return
	}
	if n := max(held, w.handed.recent(now)); n > 0 {
		d.Headers[deliveryCountHeader] = max(queued-n, 0)
	}
}
