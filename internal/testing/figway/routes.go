package figway

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/worker"
)

// Routes is the routes file of the operations tests. GetOrder answers
// at once (NOT_FOUND for order "missing", after the given delay for
// "slow-<duration>"; NOT_FOUND with a 140 KB message for "huge-message");
// CancelOrder's route gives up after 300ms while its
// worker takes 600ms, so each call ends in a late reply; PlaceOrder is an
// event. Placeholders: GRPC, HTTP, ADMIN, DESC, BROKER, and SERVER and
// BROKERX for extra keys of server and broker.
const Routes = `
server: {grpc: "GRPC", http: "HTTP", admin: "ADMIN", shutdown_grace: 3s SERVER}
descriptors: ["DESC"]
broker: {url: "BROKER" BROKERX}
routes:
  - {method: orders.v1.OrderService/GetOrder, exchange: orders, routing_key: orders.get}
  - {method: orders.v1.OrderService/CancelOrder, exchange: orders, routing_key: orders.cancel, timeout: 300ms}
  - {method: orders.v1.OrderService/PlaceOrder, exchange: orders, routing_key: orders.placed, pattern: event}
topology:
  exchanges: [{name: orders, type: topic}]
  queues: [{name: orders.requests, bind: {exchange: orders, key: "orders.#"}}]
`

// Descriptors is the absolute path of the demo's descriptor set,
// examples/orders/orders.binpb.
var Descriptors = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "examples", "orders", "orders.binpb")
}()

// WriteRoutes writes Routes with the placeholders filled into path
// (a new file in t's temporary directory if path is "").
func WriteRoutes(t testing.TB, path string, a Addrs, broker string, extra map[string]string) string {
	t.Helper()
	r := strings.NewReplacer("GRPC", a.GRPC, "HTTP", a.HTTP, "ADMIN", a.Admin, "DESC", Descriptors, "BROKERX", extra["BROKERX"],
		"BROKER", broker, "SERVER", extra["SERVER"])
	if path == "" {
		path = filepath.Join(t.TempDir(), "figway.yaml")
	}
	if err := os.WriteFile(path, []byte(r.Replace(Routes)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// StartWorker starts a Go SDK worker that serves the three methods of
// Routes on url until the test ends; seen, if not nil, receives the
// traceparent of every GetOrder of an order id that starts with "trace-".
func StartWorker(t testing.TB, url string, seen chan<- string) *worker.Worker {
	t.Helper()
	w := worker.New(worker.Config{URL: url, Queue: "orders.requests", Concurrency: 64, Logger: slog.New(slog.DiscardHandler)})
	worker.Handle(w, "orders.v1.OrderService/GetOrder", func(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
		id := req.GetOrderId()
		if seen != nil && strings.HasPrefix(id, "trace-") {
			tp, _ := worker.TraceContext(ctx)
			seen <- tp
		}
		if id == "missing" {
			return nil, status.Error(codes.NotFound, "no such order")
		}
		if id == "huge-message" { // a reply header far over frame_max
			return nil, status.Error(codes.NotFound, "no order "+strings.Repeat("x", 140<<10))
		}
		if id == "huge-metadata" { // reply metadata far over frame_max
			if err := worker.SetHeader(ctx, metadata.Pairs("x-big", strings.Repeat("m", 140<<10))); err != nil {
				return nil, err
			}
		}
		if d, ok := strings.CutPrefix(id, "slow-"); ok {
			pause, _ := time.ParseDuration(d)
			select { // a worker that stops ends its handlers' contexts
			case <-time.After(pause):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return &ordersv1.Order{OrderId: id, CustomerId: "c-1"}, nil
	})
	worker.Handle(w, "orders.v1.OrderService/CancelOrder", func(ctx context.Context, req *ordersv1.CancelOrderRequest) (*ordersv1.Order, error) {
		time.Sleep(600 * time.Millisecond) // past the route's 300ms: a late reply
		return &ordersv1.Order{OrderId: req.GetOrderId()}, nil
	})
	worker.Handle(w, "orders.v1.OrderService/PlaceOrder", func(ctx context.Context, req *ordersv1.PlaceOrderRequest) (*ordersv1.Order, error) {
		return &ordersv1.Order{}, nil
	})
	fault.RunWorker(t, w)
	return w
}
