package ratelimit

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAllowKeepsTheRate(t *testing.T) {
	// 10 s at 100/s, asked every millisecond: 100 × 10 plus the burst.
	l := New(Settings{Rate: 100, Burst: 20})
	start := time.Unix(1_000_000, 0)
	allowed := 0
	for i := range 10_000 {
		if _, ok := l.Allow("k", start.Add(time.Duration(i)*time.Millisecond)); ok {
			allowed++
		}
	}
	if want := 100*10 + 20; allowed < want-2 || allowed > want {
		t.Errorf("allowed %d of 10,000 calls over 10 s at 100/s, burst 20; want %d", allowed, want)
	}
}

// TestAllowRealClock asks the limiter every half millisecond, by the wall
// clock, for 10 s at 100/s: it allows 100 a second and its burst, ±10 %.
// The burst is a second's worth: a loaded machine that stalls the asking
// for longer than the bucket holds would lose tokens, as it should, and
// measure the machine rather than the limiter.
func TestAllowRealClock(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 10 s")
	}
	const burst = 100
	l := New(Settings{Rate: 100, Burst: burst})
	allowed, asked := 0, 0
	start := time.Now()
	for time.Since(start) < 10*time.Second && asked < 1_000_000 {
		if _, ok := l.Allow("k", time.Now()); ok {
			allowed++
		}
		asked++
		time.Sleep(500 * time.Microsecond)
	}
	elapsed := time.Since(start)
	rate := float64(allowed-burst) / elapsed.Seconds()
	t.Logf("over %v, asked %d times: allowed %d, %.1f/s past the burst (limit 100/s)", elapsed.Round(time.Millisecond), asked, allowed, rate)
	if rate < 90 || rate > 110 {
		t.Errorf("allowed %.1f/s; want 100/s ±10%%", rate)
	}
}

func TestAllowRetryAfter(t *testing.T) {
	l := New(Settings{Rate: 2, Burst: 1})
	now := time.Unix(1_000_000, 0)
	if _, ok := l.Allow("k", now); !ok {
		t.Fatal("first call refused")
	}
	d, ok := l.Allow("k", now)
	if ok || d != 500*time.Millisecond {
		t.Errorf("second call at once = (%v, %v); want (500ms, false)", d, ok)
	}
	// The refused call took nothing: half a second later there is a token.
	if _, ok := l.Allow("k", now.Add(500*time.Millisecond)); !ok {
		t.Error("call after retry-after refused")
	}
	// Other keys have buckets of their own.
	if _, ok := l.Allow("other", now); !ok {
		t.Error("another key refused")
	}
}

func TestDefaults(t *testing.T) {
	got := New(Settings{Rate: 2.5}).Settings()
	if got.Burst != 3 || got.MaxKeys != DefaultMaxKeys {
		t.Errorf("Settings{Rate: 2.5} defaults to %+v; want Burst 3, MaxKeys %d", got, DefaultMaxKeys)
	}
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	l := New(Settings{Rate: 1, Burst: 1, MaxKeys: 3})
	now := time.Unix(1_000_000, 0)
	for _, k := range []string{"a", "b", "c"} {
		l.Allow(k, now)
	}
	l.Allow("a", now) // a is the most recent now; b the least
	l.Allow("d", now) // evicts b
	if s := l.Stats(); s.Keys != 3 || s.Evicted != 1 {
		t.Fatalf("Stats() = %+v; want 3 keys, 1 evicted", s)
	}
	if _, ok := l.Allow("b", now); !ok {
		t.Error("b was not evicted: its empty bucket refused it")
	}
	if _, ok := l.Allow("a", now); ok {
		t.Error("a was evicted: its bucket was full again")
	}
}

func TestLongKeysAreHashed(t *testing.T) {
	l := New(Settings{Rate: 1, Burst: 1, MaxKeys: 10})
	now := time.Unix(1_000_000, 0)
	long := strings.Repeat("x", 8192)
	l.Allow(long, now)
	if _, ok := l.Allow(long, now); ok {
		t.Error("a long key got a second bucket")
	}
	for k := range l.keys {
		if len(k) > maxKeyBytes {
			t.Errorf("key of %d bytes held as it is", len(k))
		}
	}
}

func TestConcurrentKeys(t *testing.T) {
	l := New(Settings{Rate: 1000, Burst: 10, MaxKeys: 50})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			now := time.Unix(1_000_000, 0)
			for i := range 2000 {
				l.Allow(fmt.Sprint(g, "-", i%100), now.Add(time.Duration(i)*time.Microsecond))
			}
		})
	}
	wg.Wait()
	if n := l.Stats().Keys; n != 50 {
		t.Errorf("%d keys held; want 50 (MaxKeys)", n)
	}
}

// TestMemoryBoundedByMaxKeys feeds 1,000,000 distinct keys to a limiter of
// max_keys 100,000 and measures the heap: it holds what 100,000 keys take,
// not what a million would.
func TestMemoryBoundedByMaxKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("feeds a million keys")
	}
	const maxKeys, distinct = 100_000, 1_000_000
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := heap()
	l := New(Settings{Rate: 100, Burst: 200, MaxKeys: maxKeys})
	now := time.Unix(1_000_000, 0)
	// Keys as a header would carry them: a user id of 36 characters.
	key := func(i int) string { return fmt.Sprintf("user-%031d", i) }
	for i := range maxKeys {
		l.Allow(key(i), now)
	}
	atMax := heap() - base
	for i := maxKeys; i < distinct; i++ {
		l.Allow(key(i), now)
	}
	after := heap() - base
	runtime.KeepAlive(l)
	s := l.Stats()
	t.Logf("%d distinct keys, max_keys %d: %d held, %d evicted; heap %.1f MiB at %d keys (%d B/key), %.1f MiB after all %d",
		distinct, maxKeys, s.Keys, s.Evicted, mib(atMax), maxKeys, atMax/maxKeys, mib(after), distinct)
	if s.Keys != maxKeys || s.Evicted != distinct-maxKeys {
		t.Errorf("Stats() = %+v; want %d keys, %d evicted", s, maxKeys, distinct-maxKeys)
	}
	if after > atMax+atMax/5 {
		t.Errorf("heap grew from %.1f MiB at max_keys to %.1f MiB after %d keys; want it bounded by max_keys", mib(atMax), mib(after), distinct)
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func BenchmarkAllow(b *testing.B) {
	l := New(Settings{Rate: 1e9, Burst: 1e9, MaxKeys: 1000})
	now := time.Unix(1_000_000, 0)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprint("user-", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l.Allow(keys[i%len(keys)], now)
		i++
	}
}
