package worker

import (
	"hash/maphash"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// handedBack remembers what the worker's own faults may have handed back
// to the queue, each request charged a delivery as a crashed worker's
// would be:
//
//   - when its sessions ended — a connection lost to a node restarting, a
//     network fault — handing back every request they held unsettled;
//   - by message id, the requests it received lately: a quorum queue also
//     takes back, charged, what a live worker holds when the worker's node
//     loses sight of the queue's leader for a moment (the links between two
//     nodes closing), with no connection lost at all — and with it the
//     requests whose acks were on their way to the leader, answered
//     already.
//
// Those charges are the worker's own, not crashes': a live worker takes
// them off each request's count (discount) — one for each time it
// received the request lately, or one for each session it lost in the
// last handedBackFor, whichever is more — so that a request is no suspect
// of poison for them: it runs like a fresh one, not alone (see
// quarantine.go), and is not refused as poison after three node restarts.
// Without this, a rolling restart of a 3-node cluster on 3.10 had the
// worker refuse hundreds of requests as poison, and drop the events among
// them; and when the links of its node closed, the worker ran the 128
// requests it had held one at a time, then their set-aside copies, and
// callers waited 10–23 s. A charge by another worker's crash stays: each
// of this worker's receipts accounts for at most one charge. The price: a
// poison request that crashed other workers may crash this one once more,
// whose restarted process remembers nothing and refuses it.
type handedBack struct {
	mu     sync.Mutex
	losses []time.Time
	// The last rememberReceipts receipts, oldest at next: a ring written
	// once per request, read only for a request that comes back charged.
	ring  []receipt
	next  int
	seed  maphash.Seed
	epoch time.Time // what receipt.at counts from
}

// receipt is one receipt of a request: its message id's hash (0: none)
// and when, as time since handedBack.epoch.
type receipt struct {
	id uint64
	at time.Duration
}

// handedBackFor is how long a lost connection, or a receipt, is
// remembered.
const handedBackFor = time.Minute

// rememberReceipts bounds the receipts remembered: what a fault hands back
// is what the worker held or had just answered, a prefetch's worth, and
// 16,384 receipts are well over a second of a busy worker's, in 256 KiB.
// A request that comes back charged reads them all: some 20–50 µs, paid
// only after a fault.
const rememberReceipts = 16384

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

// receive records a receipt of the request with message id id at now.
// If charged — the queue counts deliveries of it before this one — it
// returns how many receipts of it within handedBackFor the worker
// remembers from before; else 0, without looking.
func (h *handedBack) receive(id string, now time.Time, charged bool) (before int64) {
	if id == "" {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ring == nil {
		h.ring, h.seed, h.epoch = make([]receipt, rememberReceipts), maphash.MakeSeed(), now
	}
	key, at := h.key(id), now.Sub(h.epoch)
	if charged {
		for _, r := range h.ring {
			if r.id == key && at-r.at <= handedBackFor {
				before++
			}
		}
	}
	h.ring[h.next] = receipt{key, at}
	h.next = (h.next + 1) % len(h.ring)
	return before
}

// key is the ring's key of message id id: a hash, never 0.
func (h *handedBack) key(id string) uint64 {
	return max(maphash.String(h.seed, id), 1)
}

// forget takes the last receipt of the request with message id id off
// the ring: the worker set it aside (acked it for a copy of its own), and
// the copy is another message, charged apart.
func (h *handedBack) forget(id string) {
	if id == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ring == nil {
		return
	}
	key := h.key(id)
	for k := range len(h.ring) {
		i := (h.next - 1 - k + 2*len(h.ring)) % len(h.ring)
		if h.ring[i].id == key {
			h.ring[i] = receipt{}
			return
		}
	}
}

// discount records the receipt of d and takes off its count the
// deliveries this worker's own faults may have charged it (see
// handedBack): x-delivery-count is rewritten in d's headers, here only,
// never below 0. What a set-aside copy carries (another worker's charges)
// stays.
func (w *Worker) discount(d *amqp.Delivery, now time.Time) {
	queued, ok := countHeader(d.Headers[deliveryCountHeader])
	charged := ok && queued > 0
	before := w.handed.receive(d.MessageId, now, charged)
	if !charged {
		return
	}
	if n := max(before, w.handed.recent(now)); n > 0 {
		d.Headers[deliveryCountHeader] = max(queued-n, 0)
	}
}
