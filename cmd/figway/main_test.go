package main

import (
	"bytes"
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
	"github.com/figway/figway/internal/faulttest"
	"github.com/figway/figway/internal/polltest"
	"github.com/figway/figway/internal/rabbitmqtest"
	"github.com/figway/figway/worker"
)

func TestMain(m *testing.M) { rabbitmqtest.Main(m) }

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestValidate(t *testing.T) {
	code, out, errOut := runCLI("validate", "-config", "../../examples/orders/figway.yaml")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("validate example = %d, %q, %q; want 0 and ok", code, out, errOut)
	}

	desc, _ := filepath.Abs("../../examples/orders/orders.binpb")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(`descriptors: [`+desc+`]
broker: {url: "amqp://guest:secret@127.0.0.1:5672/"}
routes:
  - {method: orders.v1.OrderService/GetOrdr, routing_key: a}
  - {method: orders.v1.OrderService/WatchOrder, routing_key: b}
  - {method: orders.v1.OrderService/ListOrders, routing_key: c, timeout: 5x}
  - {method: orders.v1.OrderService/PlaceOrder, routing_key: d, patern: event}
`), 0o600)
	code, _, errOut = runCLI("validate", "-config", bad)
	if code != 1 {
		t.Errorf("validate bad file = %d; want 1", code)
	}
	for _, want := range []string{"4 problem(s)", "routes[0].method", "GetOrder?", "routes[1].method", "server-streaming",
		"routes[2].timeout", "routes[3].patern", `did you mean "pattern"`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("validate output lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "secret") {
		t.Errorf("validate output shows the broker password:\n%s", errOut)
	}
}

func TestRoutes(t *testing.T) {
	code, out, errOut := runCLI("routes", "-config", "../../examples/orders/figway.yaml")
	if code != 0 {
		t.Fatalf("routes = %d, %q", code, errOut)
	}
	for _, want := range []string{
		"orders.v1.OrderService/GetOrder", "orders.get", "2s",
		"orders.v1.OrderService/PlaceOrder", "orders.placed",
		"split 50% broker/50% legacy by x-user", "legacy+shadow(compare)",
		"x-tenant-id",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("routes output lacks %q:\n%s", want, out)
		}
	}
}

func TestCommands(t *testing.T) {
	if code, out, _ := runCLI("version"); code != 0 || !strings.HasPrefix(out, "figway ") {
		t.Errorf("version = %d, %q", code, out)
	}
	if code, _, errOut := runCLI("frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command = %d, %q; want 2 and a usage", code, errOut)
	}
	if code, _, errOut := runCLI("validate", "-config", "/does/not/exist.yaml"); code != 1 || errOut == "" {
		t.Errorf("validate missing file = %d, %q; want 1 and the reason", code, errOut)
	}
}

func freeAddr(t *testing.T) string { return faulttest.FreeAddr(t) }

// TestServe runs the gateway as `figway serve` does, against a real broker
// and worker: a call round-trips, health and readiness report the broker,
// and cancelling (SIGTERM) drains and returns cleanly.
func TestServe(t *testing.T) {
	url := rabbitmqtest.ForTest(t).NewVHost(t)
	desc, _ := filepath.Abs("../../examples/orders/orders.binpb")
	grpcAddr, httpAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t)
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
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	go func() { defer close(wdone); w.Run(wctx) }()
	defer func() { wcancel(); <-wdone }()

	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, path, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), serveOptions{})
	}()

	waitHTTP(t, "http://"+adminAddr+"/readyz", http.StatusOK, 10*time.Second)
	faulttest.WaitConsuming(t, w)
	if code := get(t, "http://"+adminAddr+"/healthz"); code != http.StatusOK {
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
	polltest.Until(t, 10*time.Second, "grpc.health.v1 SERVING", func() bool {
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
			t.Errorf("serve returned %v; want nil after a clean drain", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return within the 2s grace + margin")
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitHTTP(t *testing.T, url string, want int, within time.Duration) {
	t.Helper()
	polltest.Until(t, within, fmt.Sprintf("GET %s answering %d", url, want), func() bool { return get(t, url) == want })
}
