package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/config"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/worker"
)

// opsRoutes is the routes file of the operations tests. GetOrder answers
// at once (NOT_FOUND for order "missing", after the given delay for
// "slow-<duration>"; NOT_FOUND with a 140 KB message for "huge-message");
// CancelOrder's route gives up after 300ms while its
// worker takes 600ms, so each call ends in a late reply; PlaceOrder is an
// event. Placeholders: GRPC, HTTP, ADMIN, DESC, BROKER, and SERVER and
// BROKERX for extra keys of server and broker.
const opsRoutes = `
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

// gwAddrs are the listen addresses of one figway.
type gwAddrs struct{ grpc, http, admin string }

func newAddrs(t *testing.T) gwAddrs {
	return gwAddrs{grpc: freeAddr(t), http: freeAddr(t), admin: freeAddr(t)}
}

// writeOpsRoutes writes opsRoutes with the placeholders filled into path
// (a new file in t's temporary directory if path is "").
func writeOpsRoutes(t *testing.T, path string, a gwAddrs, broker string, extra map[string]string) string {
	t.Helper()
	desc, _ := filepath.Abs("../../examples/orders/orders.binpb")
	r := strings.NewReplacer("GRPC", a.grpc, "HTTP", a.http, "ADMIN", a.admin, "DESC", desc, "BROKERX", extra["BROKERX"],
		"BROKER", broker, "SERVER", extra["SERVER"])
	if path == "" {
		path = filepath.Join(t.TempDir(), "figway.yaml")
	}
	if err := os.WriteFile(path, []byte(r.Replace(opsRoutes)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runOpsWorker serves the three methods of opsRoutes on url until the test
// ends; seen, if not nil, receives the traceparent of every GetOrder of an
// order id that starts with "trace-".
func runOpsWorker(t *testing.T, url string, seen chan<- string) *worker.Worker {
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// serveInProcess runs serve on the routes file at path until the test
// ends, and waits for /readyz to answer 200 (or, with wantReady false,
// for /healthz).
func serveInProcess(t *testing.T, path string, a gwAddrs, wantReady bool) {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, path, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), serveOptions{})
	}()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not return within 10s of its cancellation")
		}
	})
	probe := "/readyz"
	if !wantReady {
		probe = "/healthz"
	}
	waitHTTP(t, "http://"+a.admin+probe, http.StatusOK, 20*time.Second)
}

func httpGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func metadataCtx(ctx context.Context, kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// dialPlain is a plaintext gRPC client of addr, closed when the test ends.
func dialPlain(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// listServices asks conn's server for its services with a real
// grpc.reflection.v1 client.
func listServices(t *testing.T, conn *grpc.ClientConn) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.CloseSend()
	rc.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}})
	res, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range res.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	return names
}
