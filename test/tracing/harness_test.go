// Package tracing_test runs figway, the Go worker SDK and a legacy service
// against a real Jaeger all-in-one and a real RabbitMQ, and reads back the
// traces a call made (docs/operations.md, "Tracing").
package tracing_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/app"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/jaeger"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

func TestMain(m *testing.M) {
	// The test's own exporters fail once Jaeger is stopped, on purpose;
	// OpenTelemetry would log each failure.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	rabbitmq.Main(m)
}

// routes is the routes file of the tracing tests. GetOrder goes to the
// worker; PlaceOrder is an event; CancelOrder stays legacy's and the worker
// gets a shadow copy; ListOrders falls back to legacy, its queue having no
// consumer; ExportOrders is async.
const routes = `
server: {grpc: "GRPC", http: "HTTP", admin: "ADMIN", shutdown_grace: 2s, operations_key_file: "KEYFILE"}
descriptors: ["DESC"]
broker: {url: "BROKER"}
legacy: {grpc: "LEGACY"}
routes:
  - {method: orders.v1.OrderService/GetOrder, exchange: orders, routing_key: orders.get}
  - {method: orders.v1.OrderService/PlaceOrder, exchange: orders, routing_key: orders.placed, pattern: event}
  - {method: orders.v1.OrderService/CancelOrder, to: legacy, shadow: true, exchange: orders, routing_key: orders.cancel}
  - {method: orders.v1.OrderService/ListOrders, exchange: idle, routing_key: idle.list, fallback: legacy, timeout: 1s}
  - {method: orders.v1.OrderService/ExportOrders, exchange: orders, routing_key: orders.export, async: {after: 1s, keep: 1m, timeout: 10s}}
topology:
  exchanges: [{name: orders, type: topic}, {name: idle, type: topic}]
  queues:
    - {name: orders.requests, bind: {exchange: orders, key: "orders.#"}}
    - {name: idle.requests, bind: {exchange: idle, key: "idle.#"}}
`

// env is one figway with tracing on, its worker and legacy service, and
// the Jaeger they export to.
type env struct {
	jaeger         *jaeger.Server
	grpcAddr, rest string
	admin          string
	orders         ordersv1.OrderServiceClient
	client         *sdktrace.TracerProvider // the test's, as the caller
	workerTP       *sdktrace.TracerProvider
	logs           *syncBuffer
	tracer         trace.Tracer
}

// start brings up Jaeger, a legacy gRPC service, figway (in process,
// OTLP over gRPC to Jaeger) and the worker (OTLP over HTTP).
func start(t *testing.T) *env {
	t.Helper()
	// The package's one test has its node's default vhost to itself.
	url := rabbitmq.ForTest(t).URL()
	e := &env{jaeger: jaeger.Start(t), logs: &syncBuffer{}}

	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+e.jaeger.OTLPGRPC)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "500") // ms: an export to a stopped Jaeger fails fast
	t.Setenv("OTEL_SERVICE_NAME", "figway")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "256")

	legacy := startLegacy(t)
	e.grpcAddr, e.rest, e.admin = proc.FreeAddr(t), proc.FreeAddr(t), proc.FreeAddr(t)
	path := writeRoutes(t, e, url, legacy)
	serve(t, path, e)

	e.client = provider(t, e.jaeger, "test-client")
	e.workerTP = provider(t, e.jaeger, "orders-worker")
	e.tracer = e.client.Tracer("test")
	runWorker(t, url, e.workerTP)

	conn, err := grpc.NewClient(e.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(e.client),
			otelgrpc.WithPropagators(propagation.TraceContext{}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.orders = ordersv1.NewOrderServiceClient(conn)

	// The worker consumes once figway has declared the queue; a call
	// before that waits out its deadline.
	poll.Until(t, 30*time.Second, "the worker answers through figway", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := e.orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "warm-up"})
		return err == nil
	})
	return e
}

func writeRoutes(t *testing.T, e *env, broker, legacy string) string {
	t.Helper()
	desc, _ := filepath.Abs("../../examples/orders/orders.binpb")
	dir := t.TempDir()
	key := filepath.Join(dir, "operations.key")
	if err := os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("GRPC", e.grpcAddr, "HTTP", e.rest, "ADMIN", e.admin, "DESC", desc,
		"BROKER", broker, "LEGACY", legacy, "KEYFILE", key)
	path := filepath.Join(dir, "figway.yaml")
	if err := os.WriteFile(path, []byte(r.Replace(routes)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serve runs figway in process until the test ends, its log as JSON in
// e.logs, and waits until it is ready.
func serve(t *testing.T, path string, e *env) {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	figway.ServeApp(t, path, figway.Addrs{Admin: e.admin}, true, app.Options{Logger: log})
}

// provider is a tracer provider of service that exports to j over OTLP
// HTTP, in batches every 100ms: a call never waits for it, so that the
// latencies measured with Jaeger stopped are figway's.
func provider(t *testing.T, j *jaeger.Server, service string) *sdktrace.TracerProvider {
	t.Helper()
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpoint(j.OTLPHTTP), otlptracehttp.WithInsecure(),
		otlptracehttp.WithTimeout(500*time.Millisecond), otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(100*time.Millisecond)),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(service))))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp
}

// runWorker serves the orders methods with the Go SDK, tracing with tp:
// GetOrder's handler makes a span of its own, "load order".
func runWorker(t *testing.T, url string, tp trace.TracerProvider) {
	t.Helper()
	w := worker.New(worker.Config{URL: url, Queue: "orders.requests", Logger: slog.New(slog.DiscardHandler), TracerProvider: tp})
	tracer := tp.Tracer("orders-worker")
	worker.Handle(w, "orders.v1.OrderService/GetOrder", func(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
		_, span := tracer.Start(ctx, "load order")
		defer span.End()
		if req.GetOrderId() == "missing" {
			return nil, status.Error(codes.NotFound, "no such order")
		}
		return &ordersv1.Order{OrderId: req.GetOrderId(), CustomerId: "c-1"}, nil
	})
	worker.Handle(w, "orders.v1.OrderService/PlaceOrder", func(ctx context.Context, req *ordersv1.PlaceOrderRequest) (*ordersv1.Order, error) {
		return &ordersv1.Order{}, nil
	})
	worker.Handle(w, "orders.v1.OrderService/CancelOrder", func(ctx context.Context, req *ordersv1.CancelOrderRequest) (*ordersv1.Order, error) {
		return &ordersv1.Order{OrderId: req.GetOrderId()}, nil
	})
	worker.Handle(w, "orders.v1.OrderService/ExportOrders", func(ctx context.Context, req *ordersv1.ExportOrdersRequest) (*ordersv1.ExportOrdersResponse, error) {
		return &ordersv1.ExportOrdersResponse{}, nil
	})
	fault.RunWorker(t, w)
}

// legacyOrders is the legacy service: it answers CancelOrder and ListOrders.
type legacyOrders struct {
	ordersv1.UnimplementedOrderServiceServer
}

func (l *legacyOrders) CancelOrder(_ context.Context, req *ordersv1.CancelOrderRequest) (*ordersv1.Order, error) {
	return &ordersv1.Order{OrderId: req.GetOrderId()}, nil
}

func (l *legacyOrders) ListOrders(context.Context, *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
	return &ordersv1.ListOrdersResponse{Orders: []*ordersv1.Order{{OrderId: "from-legacy"}}}, nil
}

func startLegacy(t *testing.T) string {
	t.Helper()
	return figway.ServeLegacy(t, &legacyOrders{})
}

// syncBuffer is a log sink safe for figway's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
