package grpcin_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/adapters/grpcin"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/resilience"
	"github.com/figway/figway/worker"
)

const (
	getOrder    = "orders.v1.OrderService/GetOrder"
	cancelOrder = "orders.v1.OrderService/CancelOrder"
)

// TestNoConsumer: with every SDK worker of a queue stopped, figway sees
// that the queue has no consumer: a route with fallback: legacy answers
// from legacy and a plain route fails at once with UNAVAILABLE ("no
// consumer on queue"), each within 1.5 s of the stop — not after their
// timeouts — while events are still published; a worker coming back is
// seen within 2 s. The breakers stay closed throughout (failures: 1000), so
// what the callers see is the consumer watch's doing.
func TestNoConsumer(t *testing.T) {
	routes := strings.Replace(migrationRoutes, "  - ROUTE\n", `  - {method: `+getOrder+`, exchange: orders, routing_key: orders.get, fallback: legacy, timeout: 10s, breaker: {failures: 1000}}
  - {method: `+cancelOrder+`, exchange: orders, routing_key: orders.cancel, timeout: 10s, breaker: {failures: 1000}}
  - {method: orders.v1.OrderService/PlaceOrder, exchange: orders, routing_key: orders.placed, pattern: event}
`, 1)
	b := startBridgeAt(t, rabbitmq.ForTest(t).NewVHost(t), routes, startLegacy(t))
	consumers := func(method string) int {
		if n, known := b.gw.RouteConsumers(method); known {
			return n
		}
		return -1
	}

	stop := runWorker(t, b.url)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	poll.Until(t, 10*time.Second, "the worker answers", func() bool {
		o, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o"})
		return err == nil && o.GetNote() == "worker" && consumers(getOrder) == 1
	})

	// Stop the only worker, and probe both routes with calls of a short
	// deadline until figway knows: calls before that are published and
	// time out (their request expires in the queue).
	stopped := time.Now()
	stop()
	type probe struct {
		took, after time.Duration // the call's own time; its end after the stop
		err         error
	}
	probeUntil := func(call func(ctx context.Context) error, done func(error) bool) probe {
		for time.Since(stopped) < 10*time.Second {
			ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			start := time.Now()
			err := call(ctx)
			cancel()
			if done(err) {
				return probe{time.Since(start), time.Since(stopped), err}
			}
		}
		t.Fatalf("figway did not see the stopped worker within 10s")
		return probe{}
	}
	var note string
	legacy := probeUntil(func(ctx context.Context) error {
		o, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o"})
		note = o.GetNote()
		return err
	}, func(err error) bool { return err == nil && note == "legacy" })
	failed := probeUntil(func(ctx context.Context) error {
		_, err := b.client.CancelOrder(ctx, &ordersv1.CancelOrderRequest{OrderId: "o"})
		return err
	}, func(err error) bool { return status.Code(err) == codes.Unavailable })
	t.Logf("worker stopped: the fallback route answered from legacy %v after the stop (that call took %v); the plain route failed UNAVAILABLE %v after (in %v): %v",
		legacy.after, legacy.took, failed.after, failed.took, failed.err)
	// figway counts consumers every 500 ms: a quiet machine sees the stop
	// within about that; the bound leaves a loaded two-core machine under
	// -race room (1.6 s seen at load average 20).
	if legacy.after > 3*time.Second || failed.after > 3*time.Second {
		t.Errorf("no consumer seen %v (fallback) and %v (plain) after the stop; want within 3s", legacy.after, failed.after)
	}
	if !strings.Contains(status.Convert(failed.err).Message(), "no consumer on queue orders.requests") {
		t.Errorf("plain route: %v; want UNAVAILABLE, no consumer on queue orders.requests", failed.err)
	}
	if n := consumers(getOrder); n != 0 {
		t.Errorf("RouteConsumers = %d; want 0, known", n)
	}

	// Without a caller deadline, each call now answers at once, not after
	// the route's 10s timeout; events are still published.
	var slowest time.Duration
	for range 5 {
		start := time.Now()
		o, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o"})
		if err != nil || o.GetNote() != "legacy" {
			t.Errorf("fallback route with no consumer: %v, %q; want legacy's answer", err, o.GetNote())
		}
		_, err = b.client.CancelOrder(ctx, &ordersv1.CancelOrderRequest{OrderId: "o"})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("plain route with no consumer: %v; want UNAVAILABLE", err)
		}
		slowest = max(slowest, time.Since(start))
	}
	if slowest > time.Second {
		t.Errorf("a pair of calls with no consumer took %v; want at once", slowest)
	}
	var header metadata.MD
	if _, err := b.client.PlaceOrder(ctx, &ordersv1.PlaceOrderRequest{}, grpc.Header(&header)); err != nil || len(header.Get(grpcin.HeaderEventID)) != 1 {
		t.Errorf("event with no consumer: %v, %v; want published, with its event id", err, header)
	}
	for _, m := range []string{getOrder, cancelOrder} {
		if st := b.gw.Table().Lookup(m).BreakerState(); st != resilience.BreakerClosed {
			t.Errorf("%s: breaker %v; want closed (failures: 1000)", m, st)
		}
	}

	// A worker comes back.
	back := time.Now()
	runWorker(t, b.url)
	poll.Until(t, 10*time.Second, "the worker seen again", func() bool { return consumers(getOrder) > 0 })
	seen := time.Since(back)
	poll.Until(t, 10*time.Second, "the worker answers again", func() bool {
		o, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o"})
		return err == nil && o.GetNote() == "worker"
	})
	answered := time.Since(back)
	t.Logf("worker back: seen %v after it started, answering %v after", seen, answered)
	if seen > 2*time.Second || answered > 2*time.Second {
		t.Errorf("the returning worker was seen %v and answered %v after it started; want within 2s", seen, answered)
	}
}

// runWorker runs an SDK worker on the migration topology's queue that
// answers GetOrder (note "worker") and CancelOrder. stop stops it and
// waits; the test's end does, too.
func runWorker(t *testing.T, url string) (stop func()) {
	t.Helper()
	w := worker.New(worker.Config{URL: url, Queue: "orders.requests", Logger: slog.New(slog.DiscardHandler)})
	worker.Handle(w, getOrder, func(_ context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
		return &ordersv1.Order{OrderId: req.GetOrderId(), Note: "worker"}, nil
	})
	worker.Handle(w, cancelOrder, func(_ context.Context, req *ordersv1.CancelOrderRequest) (*ordersv1.Order, error) {
		return &ordersv1.Order{OrderId: req.GetOrderId()}, nil
	})
	return fault.RunWorker(t, w)
}
