package async

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/prom"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// TestAsyncFastCallCost measures fast calls on GetOrder with async, then
// on the same route without it (the routes file reloaded), in alternating
// rounds on one figway: a call answered within async.after is answered
// synchronously, and what async adds to it is reported, not asserted (a
// shared two-core box is too noisy for a bound on microseconds).
func TestAsyncFastCallCost(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	figway.StartWorker(t, url, nil)
	key := writeKey(t)
	a := figway.NewAddrs(t)
	// after: 10s, so that a fast call the loaded test machine holds up
	// for a second is still answered synchronously: the test measures what
	// the async path costs a call that needs none of it.
	const fastAsync = `, async: {after: 10s, keep: 10s, timeout: 20s, owner_by: x-tenant-id}`
	path := writeAsyncRoutes(t, "", a, url, key, fastAsync)
	figway.Serve(t, path, a, true)
	base := "http://" + a.HTTP
	poll.Until(t, 20*time.Second, "a fast call answered 200", func() bool {
		return do(t, "GET", base+"/v1/orders/warm", "X-Tenant-Id", "t").code == 200
	})
	reloads := 0.0
	setAsync := func(on bool) {
		async := ""
		if on {
			async = fastAsync
		}
		writeAsyncRoutes(t, path, a, url, key, async)
		reloads++
		poll.Until(t, 10*time.Second, "the routes file reloaded", func() bool {
			return prom.Get(t, "http://"+a.Admin+"/metrics").Value("figway_config_reloads_total", "result", "ok") >= reloads
		})
	}
	const n = 200
	lat := map[string]map[bool][]time.Duration{"immediate": {}, "10ms": {}}
	for round := range 4 {
		on := round%2 == 0
		setAsync(on)
		for _, c := range []struct{ name, id string }{{"immediate", "fast"}, {"10ms", "slow-10ms"}} {
			for range n {
				got := do(t, "GET", base+"/v1/orders/"+c.id, "X-Tenant-Id", "t")
				if got.code != 200 {
					t.Fatalf("fast call (async %v) = %d %s; want 200, answered synchronously", on, got.code, got.body)
				}
				lat[c.name][on] = append(lat[c.name][on], got.took)
			}
		}
	}
	for _, name := range []string{"immediate", "10ms"} {
		with, without := median(lat[name][true]), median(lat[name][false])
		t.Logf("worker %s: median of %d REST calls with async %v, without %v (ratio %.3f); p90 %v vs %v",
			name, 2*n, with, without, float64(with)/float64(without), pct(lat[name][true], 90), pct(lat[name][false], 90))
	}
}

func median(d []time.Duration) time.Duration { return pct(d, 50) }

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)*p/100].Round(time.Microsecond)
}

// TestAsyncTenThousand keeps 10,000 done operations and reports figway's
// RSS and the stream's size on disk, and how long a second figway takes to
// read them all at start. It is a measurement, run with
// FIGWAY_MEASURE_OPERATIONS=1.
func TestAsyncTenThousand(t *testing.T) {
	if os.Getenv("FIGWAY_MEASURE_OPERATIONS") == "" {
		t.Skip("a measurement; set FIGWAY_MEASURE_OPERATIONS=1 to run it")
	}
	// The node's default vhost: a measurement runs alone.
	node := rabbitmq.ForTest(t)
	url := node.URL()
	figway.StartWorker(t, url, nil)
	key := writeKey(t)
	aAddr, bAddr := figway.NewAddrs(t), figway.NewAddrs(t)
	long := `, async: {after: 1s, keep: 1h, timeout: 1m, owner_by: x-tenant-id}`
	bin := proc.BuildFigway(t)
	a := figway.Run(t, bin, writeAsyncRoutes(t, "", aAddr, url, key, long), aAddr)
	A := "http://" + aAddr.HTTP
	poll.Until(t, 20*time.Second, "a fast call answered 200", func() bool {
		return do(t, "GET", A+"/v1/orders/warm", "X-Tenant-Id", "t").code == 200
	})
	before := figway.RSS(t, a.Cmd.Process.Pid)
	const total, workers = 10_000, 16
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for range workers {
		wg.Go(func() {
			for i := next.Add(1); i <= total; i = next.Add(1) {
				got := do(t, "GET", A+"/v1/orders/order-"+strconv.FormatInt(i, 10), "Prefer", "respond-async", "X-Tenant-Id", "t")
				if got.code != 202 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d calls answered 202 in %v (%d failed)", total, time.Since(begin).Round(time.Millisecond), failed.Load())
	poll.Until(t, time.Minute, "10,000 operations done", func() bool {
		return prom.Get(t, "http://"+aAddr.Admin+"/metrics").Value("figway_operations", "state", "done") >= total
	})
	s := prom.Get(t, "http://"+aAddr.Admin+"/metrics")
	t.Logf("figway A: RSS %d KiB before, %d KiB with %v done operations (index estimate %.0f bytes)",
		before, figway.RSS(t, a.Cmd.Process.Pid), s.Value("figway_operations", "state", "done"), s.Value("figway_operations_bytes"))

	startB := time.Now()
	b := figway.Run(t, bin, writeAsyncRoutes(t, "", bAddr, url, key, long), bAddr)
	t.Logf("figway B: ready (stream read) %v after its start; RSS %d KiB", time.Since(startB).Round(time.Millisecond), figway.RSS(t, b.Cmd.Process.Pid))

	out, err := node.Ctl(t.Context(), "list_queues", "name", "type", "messages")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("list_queues:\n%s", out)
	dir, err := node.Ctl(t.Context(), "eval", "rabbit_mnesia:dir().")
	if err != nil {
		t.Fatal(err)
	}
	// A stream's segments live in stream/<vhost>_<queue, dots as
	// underscores>_<timestamp>/ below the node's data directory.
	size := 0
	filepath.WalkDir(strings.Trim(strings.TrimSpace(dir), `"`), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, "/stream/") && strings.Contains(p, "_figway_operations_") {
			if fi, err := d.Info(); err == nil {
				size += int(fi.Size())
			}
		}
		return nil
	})
	if size == 0 {
		t.Errorf("no segment of stream figway.operations found below %s", dir)
	}
	t.Logf("stream figway.operations on disk: %d bytes (%.0f bytes per operation)", size, float64(size)/total)
}
