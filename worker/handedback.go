package worker

import (
	"sync"
	"time"
)

// handedBack remembers the requests a worker held unsettled when its
// session ended — the connection lost to a node restarting, a network
// fault — and so handed back to the queue, charged a delivery. When the
// same worker takes one back, that charge was its own connection's, not a
// crash's: the request is no suspect of poison, and runs like a fresh one
// rather than alone (see quarantine.go). Without this, after a rolling
// restart every worker ran the requests it had held one at a time, and
// their callers waited through the next node's restart. A request
// handed back by another worker, or by this one's crashed predecessor, is
// unknown here and stays a suspect.
type handedBack struct {
	mu  sync.Mutex
	ids map[string]time.Time // message_id → when handed back
}

// handedBackFor is how long a handed-back request is remembered, and
// maxHandedBack how many at most.
const (
	handedBackFor = time.Minute
	maxHandedBack = 1 << 14
)

// add remembers ids as handed back at now.
func (h *handedBack) add(ids []string, now time.Time) {
	if len(ids) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ids == nil {
		h.ids = make(map[string]time.Time, len(ids))
	}
	for id, at := range h.ids {
		if now.Sub(at) > handedBackFor {
			delete(h.ids, id)
		}
	}
	for _, id := range ids {
		if len(h.ids) >= maxHandedBack {
			return
		}
		h.ids[id] = now
	}
}

// took reports whether id was handed back by this worker within
// handedBackFor, and forgets it.
func (h *handedBack) took(id string, now time.Time) bool {
	if id == "" {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.ids[id]
	if ok {
		delete(h.ids, id)
	}
	return ok && now.Sub(at) <= handedBackFor
}
