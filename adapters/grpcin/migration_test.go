package grpcin_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

// migrationRoutes are the routes of the strangler-fig tests; ROUTE is
// replaced by the GetOrder route under test.
const migrationRoutes = `
descriptors: [DESCRIPTORS]
broker: {url: "BROKER", channels: 2}
legacy: {grpc: 127.0.0.1:1}
routes:
  - ROUTE
topology:
  exchanges: [{name: orders, type: topic}]
  queues: [{name: orders.requests, bind: {exchange: orders, key: "orders.#"}}]
`

func migration(route string) string { return strings.Replace(migrationRoutes, "ROUTE", route, 1) }

// workerNotes runs a worker whose GetOrder answers note "worker".
func workerNotes(t *testing.T, url string) {
	startWorker(t, url, func(w *worker.Worker) {
		worker.Handle(w, "orders.v1.OrderService/GetOrder", func(_ context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
			return &ordersv1.Order{OrderId: req.GetOrderId(), Note: "worker"}, nil
		})
	})
}

func TestCanarySplit(t *testing.T) {
	b := startBridge(t, migration("{method: orders.v1.OrderService/GetOrder, exchange: orders, routing_key: orders.get, weight: 30}"), startLegacy(t))
	workerNotes(t, b.url)
	const calls, conc = 10000, 32
	// A bound against a hang, not a speed test: on a two-core machine
	// under a load average of 65, 60 s saw 4,896 of the calls.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	var toWorker, toLegacy, failed atomic.Int64
	var wg sync.WaitGroup
	for g := range conc {
		wg.Go(func() {
			for i := g; i < calls; i += conc {
				o, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: fmt.Sprint(i)})
				switch {
				case err != nil:
					failed.Add(1)
				case o.GetNote() == "worker":
					toWorker.Add(1)
				case o.GetNote() == "legacy":
					toLegacy.Add(1)
				}
			}
		})
	}
	wg.Wait()
	share := float64(toWorker.Load()) / calls * 100
	t.Logf("weight 30: %d to the broker (%.2f%%), %d to legacy, %d failed, in %v", toWorker.Load(), share, toLegacy.Load(), failed.Load(), time.Since(start).Round(time.Millisecond))
	if failed.Load() != 0 || share < 27 || share > 33 {
		t.Errorf("broker share %.2f%% with %d failures; want 30%% ± 3 and none", share, failed.Load())
	}
	m := b.gw.Migration("orders.v1.OrderService/GetOrder")
	if m.CanaryBroker != uint64(toWorker.Load()) || m.CanaryLegacy != uint64(toLegacy.Load()) {
		t.Errorf("Migration counters %+v; want broker %d legacy %d", m, toWorker.Load(), toLegacy.Load())
	}
}

func TestCanarySticky(t *testing.T) {
	b := startBridge(t, migration("{method: orders.v1.OrderService/GetOrder, exchange: orders, routing_key: orders.get, weight: 50, sticky_by: x-user}"), startLegacy(t))
	workerNotes(t, b.url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sides := map[string]int{}
	for u := range 100 {
		user := fmt.Sprintf("user-%d", u)
		uctx := metadata.AppendToOutgoingContext(ctx, "x-user", user)
		var seen []string
		for range 5 {
			o, err := b.client.GetOrder(uctx, &ordersv1.GetOrderRequest{OrderId: "o"})
			if err != nil {
				t.Fatalf("GetOrder as %s: %v", user, err)
			}
			seen = append(seen, o.GetNote())
		}
		slices.Sort(seen)
		if seen[0] != seen[4] {
			t.Errorf("%s switched sides: %v", user, seen)
		}
		sides[seen[0]]++
	}
	t.Logf("100 sticky users: %v", sides)
	if sides["worker"] < 25 || sides["legacy"] < 25 {
		t.Errorf("sticky users per side %v; want both sides used at weight 50", sides)
	}
}

func TestFallbackWhileBrokerDown(t *testing.T) {
	node := rabbitmq.Own(t)
	b := startBridgeAt(t, node.URL(), migration("{method: orders.v1.OrderService/GetOrder, exchange: orders, routing_key: orders.get, fallback: legacy}"), startLegacy(t))
	workerNotes(t, b.url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	note := func() string {
		o, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o"})
		if err != nil {
			return "error: " + err.Error()
		}
		return o.GetNote()
	}
	if n := note(); n != "worker" {
		t.Fatalf("before the fault GetOrder answered %q; want worker", n)
	}
	if err := node.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// Calls in flight when the broker died fail (they may have been
	// published); once figway knows, calls go to legacy.
	for n := note(); n != "legacy"; n = note() {
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("10s after the broker died GetOrder still answers %q; want legacy", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("fallback engaged %v after kill -9", time.Since(killed))
	for range 20 {
		if n := note(); n != "legacy" {
			t.Errorf("while the broker is down GetOrder answered %q; want legacy", n)
		}
	}
	if m := b.gw.Migration("orders.v1.OrderService/GetOrder"); !m.FallingBack || m.Fallbacks < 21 {
		t.Errorf("Migration = %+v; want falling back, ≥ 21 fallbacks", m)
	}
	if err := node.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	for n := note(); n != "worker"; n = note() {
		if time.Since(restarted) > 15*time.Second {
			t.Fatalf("15s after the broker returned GetOrder still answers %q; want worker", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("fallback disengaged %v after the broker restarted", time.Since(restarted))
	if m := b.gw.Migration("orders.v1.OrderService/GetOrder"); m.FallingBack {
		t.Errorf("Migration = %+v; want not falling back once the broker answers", m)
	}
}

func TestShadowCompare(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ignore   string
		mismatch bool
	}{
		{"differs on note", "", true},
		{"note ignored", ", ignore_fields: [note]", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBridge(t, migration("{method: orders.v1.OrderService/GetOrder, to: legacy, shadow: true, compare: true, exchange: orders, routing_key: orders.get"+tc.ignore+"}"), startLegacy(t))
			workerNotes(t, b.url)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			const n = 50
			for i := range n {
				o, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: fmt.Sprint(i)})
				if err != nil || o.GetNote() != "legacy" {
					t.Fatalf("shadowed GetOrder = %v, %v; want legacy's answer", o, err)
				}
			}
			var m = b.gw.Migration("orders.v1.OrderService/GetOrder")
			for end := time.Now().Add(10 * time.Second); m.ShadowMatched+m.ShadowMismatched+m.ShadowFailed+m.ShadowDropped < n && time.Now().Before(end); {
				time.Sleep(20 * time.Millisecond)
				m = b.gw.Migration("orders.v1.OrderService/GetOrder")
			}
			want := [2]uint64{n, 0} // matched, mismatched
			if tc.mismatch {
				want = [2]uint64{0, n}
			}
			if got := [2]uint64{m.ShadowMatched, m.ShadowMismatched}; got != want || m.ShadowFailed != 0 || m.ShadowDropped != 0 {
				t.Errorf("Migration = %+v; want matched/mismatched %v, none failed or dropped", m, want)
			}
		})
	}
}

// TestShadowOffTheCallersPath proves the shadow copy is off the caller's
// path by making it slow: the worker holds every shadow copy for 300ms,
// and the callers, answered by legacy, must not wait for it. The median is
// asserted (with a margin that holds on a loaded box under -race); the
// latency of a plain legacy route, measured interleaved, is logged beside
// it for comparison.
func TestShadowOffTheCallersPath(t *testing.T) {
	const hold = 300 * time.Millisecond
	routes := strings.Replace(migrationRoutes, "ROUTE",
		"{method: orders.v1.OrderService/GetOrder, to: legacy, shadow: true, compare: true, exchange: orders, routing_key: orders.get}\n  - {method: orders.v1.OrderService/ListOrders, to: legacy}", 1)
	b := startBridge(t, routes, startLegacy(t))
	var shadows atomic.Int64
	startWorker(t, b.url, func(w *worker.Worker) {
		worker.Handle(w, "orders.v1.OrderService/GetOrder", func(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
			shadows.Add(1)
			select {
			case <-time.After(hold):
			case <-ctx.Done():
			}
			return &ordersv1.Order{OrderId: req.GetOrderId(), Note: "worker"}, nil
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const calls = 100
	var plain, shadowed []time.Duration
	for range calls {
		t0 := time.Now()
		if _, err := b.client.ListOrders(ctx, &ordersv1.ListOrdersRequest{}); err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		if _, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o"}); err != nil {
			t.Fatal(err)
		}
		plain, shadowed = append(plain, t1.Sub(t0)), append(shadowed, time.Since(t1))
	}
	slices.Sort(plain)
	slices.Sort(shadowed)
	t.Logf("legacy passthrough p50 %v p99 %v; shadowed (worker holds %v) p50 %v p99 %v; %d shadow copies reached the worker",
		plain[calls/2], plain[calls*99/100], hold, shadowed[calls/2], shadowed[calls*99/100], shadows.Load())
	if shadows.Load() == 0 {
		t.Fatal("no shadow copy reached the worker; the test proves nothing")
	}
	if p50 := shadowed[calls/2]; p50 >= hold/3 {
		t.Errorf("shadowed calls' median %v; want well under the worker's %v hold (the caller waited for the shadow)", p50, hold)
	}
}
