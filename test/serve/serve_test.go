package serve

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/figway/figway/config"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/app"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

func TestMain(m *testing.M) { rabbitmq.Main(m) }

// TestServe runs the gateway as `figway serve` does (internal/app),
// against a real broker and worker: a call round-trips, health and
// readiness report the broker, and cancelling (SIGTERM) drains and returns
// cleanly.
func TestServe(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	desc, _ := filepath.Abs("../../examples/orders/orders.binpb")
	grpcAddr, httpAddr, adminAddr := proc.FreeAddr(t), proc.FreeAddr(t), proc.FreeAddr(t)
	path := filepath.Join(t.TempDir(), "figway.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`
server: {grpc: %q, http: %q, admin: %q, shutdown_grace: 2s, json: {proto_names: true, emit_unpopulated: true, discard_unknown: true}}
descriptors: [%s]
broker: {url: %q}
routes:
  - {method: orders.v1.OrderService/GetOrder, exchange: orders, routing_key: orders.get}
topology:
  exchanges: [{name: orders, type: topic}]
  queues: [{name: orders.requests, bind: {exchange: orders, key: "orders.#"}}]
`, grpcAddr, httpAddr, adminAddr, desc, url)), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}

	w := worker.New(worker.Config{URL: url, Queue: "orders.requests", Logger: slog.New(slog.DiscardHandler)})
	worker.Handle(w, "orders.v1.OrderService/GetOrder", func(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
		return &ordersv1.Order{OrderId: req.GetOrderId(), CustomerId: "c-1"}, nil
	})
	fault.RunWorker(t, w)

	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	fw, err := app.New(path, cfg, app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	go func() { served <- fw.Run(ctx) }()

	figway.WaitHTTP(t, "http://"+adminAddr+"/readyz", http.StatusOK, 10*time.Second)
	fault.WaitConsuming(t, w)
	if code := figway.Get(t, "http://"+adminAddr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d; want 200", code)
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o, err := ordersv1.NewOrderServiceClient(conn).GetOrder(cctx, &ordersv1.GetOrderRequest{OrderId: "o-7"})
	if err != nil || o.GetOrderId() != "o-7" {
		t.Fatalf("GetOrder through figway serve = %v, %v", o, err)
	}
	poll.Until(t, 10*time.Second, "grpc.health.v1 SERVING", func() bool {
		h, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{})
		return err == nil && h.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})

	// server.json reaches the REST ingress: proto names, zero values
	// rendered, an unknown query parameter ignored.
	resp, err := http.Get("http://" + httpAddr + "/v1/orders/o-8?no_such_field=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"order_id":"o-8"`, `"customer_id":"c-1"`, `"note":""`} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(strings.ReplaceAll(string(body), " ", ""), want) {
			t.Errorf("GET /v1/orders/o-8 with server.json = %d %s; want 200 with %s", resp.StatusCode, body, want)
		}
	}

	stop() // what SIGTERM does
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Run returned %v; want nil after a clean drain", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within the 2s grace + margin")
	}
}
