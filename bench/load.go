package main

import (
	"context"
	"slices"
	"sync"
	"time"
)

// result is what one scenario at one concurrency measured.
type result struct {
	scenario string
	conc     int
	calls    int
	errors   int
	firstErr error
	elapsed  time.Duration
	p50, p99 time.Duration
	cpu      cpuUse // CPU per call, by process
}

func (r result) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.calls) / r.elapsed.Seconds()
}

// load runs call from conc goroutines for dur (and at most maxCalls calls in
// all), recording each call's latency. Every loop is bounded in time and
// count.
func load(scenario string, conc int, dur time.Duration, maxCalls int, call func(ctx context.Context) error) result {
	ctx, cancel := context.WithTimeout(context.Background(), dur+30*time.Second)
	defer cancel()
	var (
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, 1<<16)
		errs     int
		firstErr error
		wg       sync.WaitGroup
	)
	per := maxCalls / conc
	start := time.Now()
	stop := start.Add(dur)
	for range conc {
		wg.Go(func() {
			mine := make([]time.Duration, 0, 1024)
			var bad int
			var first error
			for i := 0; i < per && time.Now().Before(stop); i++ {
				t0 := time.Now()
				err := call(ctx)
				if err != nil {
					bad++
					if first == nil {
						first = err
					}
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			if firstErr == nil {
				firstErr = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	r := result{scenario: scenario, conc: conc, calls: len(lat), errors: errs, firstErr: firstErr, elapsed: time.Since(start)}
	r.p50, r.p99 = percentiles(lat)
	return r
}

// percentiles sorts lat and returns its median and 99th percentile; 0
// for none.
func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100]
}
