package resilience

import "sync/atomic"

// Bulkhead bounds the calls in flight on one route. It never queues: when
// the limit is reached the next call is refused at once, so one slow route
// cannot hold every goroutine and connection of the gateway.
type Bulkhead struct {
	limit    int64
	inFlight atomic.Int64
}

// NewBulkhead returns a bulkhead admitting at most limit calls at once. If
// limit is 0 or less, it admits every call.
func NewBulkhead(limit int) *Bulkhead {
	return &Bulkhead{limit: int64(limit)}
}

// Acquire admits a call if fewer than the limit are in flight. A call that
// was admitted must call Release exactly once.
func (b *Bulkhead) Acquire() bool {
	if b.limit <= 0 {
		b.inFlight.Add(1)
		return true
	}
	for {
		n := b.inFlight.Load()
		if n >= b.limit {
			return false
		}
		if b.inFlight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release ends a call admitted by Acquire.
func (b *Bulkhead) Release() { b.inFlight.Add(-1) }

// InFlight returns the number of calls admitted and not yet released.
func (b *Bulkhead) InFlight() int { return int(b.inFlight.Load()) }

// Limit returns the bulkhead's limit; 0 means none.
func (b *Bulkhead) Limit() int { return int(b.limit) }
