// Package ratelimit bounds how often each caller may call: a token bucket
// per key (golang.org/x/time/rate), in a table of at most MaxKeys keys
// from which the least recently used key is evicted. It does no I/O and
// reads no clock: every call is given its time.
package ratelimit

import (
	"container/list"
	"crypto/sha256"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Settings are one limit. The zero value is not a valid limit: config
// validates each field.
type Settings struct {
	// Rate is how many calls per second each key may make, on average.
	Rate float64
	// Burst is how many calls a key may make at once, after it has been
	// quiet: the bucket's size. If Burst is 0, Rate rounded up is used
	// (at least 1).
	Burst int
	// MaxKeys bounds the keys held at once; past it, the key used least
	// recently is forgotten (and starts again with a full bucket). If
	// MaxKeys is 0, DefaultMaxKeys is used.
	MaxKeys int
}

// maxKeyBytes is the longest key held as it is; a longer one is held as
// its SHA-256.
const maxKeyBytes = 64

// DefaultMaxKeys is the MaxKeys of Settings that leave it 0.
const DefaultMaxKeys = 100000

func (s Settings) orDefaults() Settings {
	if s.Burst <= 0 {
		s.Burst = max(1, int(math.Ceil(s.Rate)))
	}
	if s.MaxKeys <= 0 {
		s.MaxKeys = DefaultMaxKeys
	}
	return s
}

// Limiter holds a token bucket per key. It is safe for concurrent use; a
// call holds its one lock for a map lookup and a bucket update only, so a
// caller spinning on one key costs the others no more than that.
type Limiter struct {
	s Settings

	mu    sync.Mutex
	keys  map[string]*list.Element // of *entry
	order list.List                // most recently used first
	// evicted counts the keys forgotten to make room.
	evicted uint64
}

type entry struct {
	key    string
	bucket *rate.Limiter
}

// New returns a Limiter of s.
func New(s Settings) *Limiter {
	s = s.orDefaults()
	return &Limiter{s: s, keys: make(map[string]*list.Element)}
}

// Settings returns the limit, defaults applied.
func (l *Limiter) Settings() Settings { return l.s }

// Allow takes one token from key's bucket at now. It reports whether the
// call may go on; when it may not, retryAfter is how long until the bucket
// holds a token again. A refused call takes nothing from the bucket.
func (l *Limiter) Allow(key string, now time.Time) (retryAfter time.Duration, ok bool) {
	if len(key) > maxKeyBytes {
		// Keys come from callers: a table of MaxKeys keys must not hold
		// MaxKeys header values of kilobytes each.
		sum := sha256.Sum256([]byte(key))
		key = string(sum[:])
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key)
	r := b.ReserveN(now, 1)
	if !r.OK() { // only when Burst < 1, which orDefaults prevents
		return time.Second, false
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// bucket returns key's bucket, made or moved to the front; l.mu is held.
func (l *Limiter) bucket(key string) *rate.Limiter {
	if el, ok := l.keys[key]; ok {
		l.order.MoveToFront(el)
		return el.Value.(*entry).bucket
	}
	if len(l.keys) >= l.s.MaxKeys {
		oldest := l.order.Back()
		l.order.Remove(oldest)
		delete(l.keys, oldest.Value.(*entry).key)
		l.evicted++
	}
	e := &entry{key: key, bucket: rate.NewLimiter(rate.Limit(l.s.Rate), l.s.Burst)}
	l.keys[key] = l.order.PushFront(e)
	return e.bucket
}

// Stats are a Limiter's counts.
type Stats struct {
	Keys    int    // held now, at most MaxKeys
	Evicted uint64 // forgotten to make room, since New
}

// Stats returns the Limiter's counts now.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Keys: len(l.keys), Evicted: l.evicted}
}
