package resilience

import (
	"math/rand/v2"
	"time"
)

// Backoff computes capped exponential delays with full jitter ("Exponential
// Backoff And Jitter", AWS Architecture Blog, 2015): attempt n waits a
// random time in [Min, min(Max, Min·2ⁿ)], so many gateways that lost the
// same broker do not reconnect in lockstep.
//
// The default cap, 2s, bounds how long calls keep failing after the broker
// is back: at most one wait of Max plus a dial, however long the outage.
type Backoff struct {
	Min time.Duration // if 0, 100ms
	Max time.Duration // if 0, 2s
}

// Delay returns the wait before retry number attempt (0 for the first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi <= 0 {
		hi = 2 * time.Second
	}
	if hi < lo {
		hi = lo
	}
	ceil := lo
	for i := 0; i < attempt && ceil < hi; i++ {
		ceil *= 2
	}
	if ceil > hi {
		ceil = hi
	}
	if ceil == lo {
		return lo
	}
	return lo + rand.N(ceil-lo+1)
}
