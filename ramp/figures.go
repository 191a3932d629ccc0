package ramp

import (
	"math"
	"slices"
	"time"
)

// Figures are what a step's gate is judged on: one figway's calls of a
// ramped route since the step began, or every figway's added up.
type Figures struct {
	// Calls and Failures are broker-side calls, and those that failed as
	// the route's breaker counts failures.
	Calls    uint64 `json:"calls"`
	Failures uint64 `json:"failures"`
	// Running counts broker-side calls that had not ended yet; each is in
	// BrokerLatency at its age then, which its latency will be at least.
	Running uint64 `json:"running,omitempty"`
	// Legacy counts the calls the step left to legacy that legacy
	// answered.
	Legacy uint64 `json:"legacy"`
	// Compared and Mismatched count shadow copies compared with legacy's
	// answer, and those that differed.
	Compared   uint64 `json:"compared"`
	Mismatched uint64 `json:"mismatched"`
	// BrokerLatency and LegacyLatency are the sides' latencies.
	BrokerLatency Histogram `json:"broker_latency,omitempty"`
	LegacyLatency Histogram `json:"legacy_latency,omitempty"`
}

// add adds o to f.
func (f *Figures) add(o Figures) {
	f.Calls += o.Calls
	f.Failures += o.Failures
	f.Running += o.Running
	f.Legacy += o.Legacy
	f.Compared += o.Compared
	f.Mismatched += o.Mismatched
	f.BrokerLatency = f.BrokerLatency.merge(o.BrokerLatency)
	f.LegacyLatency = f.LegacyLatency.merge(o.LegacyLatency)
}

func (f *Figures) clone() Figures {
	c := *f
	c.BrokerLatency = c.BrokerLatency.merge(nil)
	c.LegacyLatency = c.LegacyLatency.merge(nil)
	return c
}

// ErrorRate is the share of broker-side calls that failed, 0 to 1.
func (f *Figures) ErrorRate() float64 { return ratio(f.Failures, f.Calls) }

// MismatchRate is the share of compared shadow copies that differed.
func (f *Figures) MismatchRate() float64 { return ratio(f.Mismatched, f.Compared) }

func ratio(n, d uint64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// Histogram counts latencies in buckets whose bounds grow by 2 % from
// 100 µs (bucket 0: up to 100 µs; bucket i: up to 100 µs × 1.02^i), so a
// percentile read from it is at most 2 % above the latency it stands
// for, and histograms of many figways add up. Keys are bucket indexes.
type Histogram map[int]uint64

const (
	histBase   = 100 * time.Microsecond
	histGrowth = 1.02
	// histBuckets bounds the index: 100 µs × 1.02^1000 is about 11 hours.
	histBuckets = 1000
)

// bucket returns the index of the bucket of d.
func bucket(d time.Duration) int {
	if d <= histBase {
		return 0
	}
	i := int(math.Ceil(math.Log(float64(d)/float64(histBase)) / math.Log(histGrowth)))
	return min(i, histBuckets)
}

// bound returns the upper bound of bucket i.
func bound(i int) time.Duration {
	return time.Duration(float64(histBase) * math.Pow(histGrowth, float64(i)))
}

func (h Histogram) observe(d time.Duration) Histogram {
	if h == nil {
		h = Histogram{}
	}
	h[bucket(d)]++
	return h
}

func (h Histogram) merge(o Histogram) Histogram {
	if len(h)+len(o) == 0 {
		return nil
	}
	out := make(Histogram, len(h)+len(o))
	for k, v := range h {
		out[k] += v
	}
	for k, v := range o {
		out[k] += v
	}
	return out
}

// Quantile returns the upper bound of the bucket that holds the q-th
// quantile (0 < q ≤ 1) of the latencies, or 0 when there are none.
func (h Histogram) Quantile(q float64) time.Duration {
	var n uint64
	for _, v := range h {
		n += v
	}
	if n == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(n)))
	keys := make([]int, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var seen uint64
	for _, k := range keys {
		seen += h[k]
		if seen >= want {
			return bound(k)
		}
	}
	return bound(keys[len(keys)-1])
}
