package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/config"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/app"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

// routesFile is a routes file with one route, the last %s.
const routesFile = `
server: {grpc: %q, http: %q, admin: %q, shutdown_grace: 2s}
descriptors: [%q]
broker: {url: %q}
routes:
  - %s
topology:
  queues: [{name: orders.get}]
`

// TestRunAndReload runs a whole figway in-process: it serves a call
// through the broker, keeps its routes when Reload is given a file with a
// problem (and returns that problem with its field path), takes the new
// routes of a good file, and returns from Run once its context ends.
func TestRunAndReload(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	desc, err := filepath.Abs("../../examples/orders/orders.binpb")
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr, httpAddr, adminAddr := proc.FreeAddr(t), proc.FreeAddr(t), proc.FreeAddr(t)
	path := filepath.Join(t.TempDir(), "figway.yaml")
	write := func(route string) {
		t.Helper()
		y := fmt.Sprintf(routesFile, grpcAddr, httpAddr, adminAddr, desc, url, route)
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("{method: orders.v1.OrderService/GetOrder, routing_key: orders.get}")

	w := worker.New(worker.Config{URL: url, Queue: "orders.get", Logger: slog.New(slog.DiscardHandler)})
	worker.Handle(w, "orders.v1.OrderService/GetOrder", func(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
		return &ordersv1.Order{OrderId: req.GetOrderId()}, nil
	})
	fault.RunWorker(t, w)

	// ServeApp fails the test if Run does not return nil once its context
	// ends, at the test's end.
	a := figway.ServeApp(t, path, figway.Addrs{GRPC: grpcAddr, HTTP: httpAddr, Admin: adminAddr}, true, app.Options{Version: "test"})
	fault.WaitConsuming(t, w) // figway fails a call whose queue has no consumer

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	orders := ordersv1.NewOrderServiceClient(conn)
	getOrder := func() (*ordersv1.Order, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
	}
	if o, err := getOrder(); err != nil || o.GetOrderId() != "o-1" {
		t.Fatalf("GetOrder through the broker = %v, %v; want o-1", o, err)
	}

	write("{method: orders.v1.OrderService/GetOrder, routing_key: orders.get, timeout: -1s}")
	err = a.Reload("test")
	var fe *config.FieldError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "routes[0].timeout") {
		t.Errorf("Reload of a file with a bad timeout = %v; want a config.FieldError at routes[0].timeout", err)
	}
	if o, err := getOrder(); err != nil || o.GetOrderId() != "o-1" {
		t.Errorf("GetOrder after a refused reload = %v, %v; want the running route to serve", o, err)
	}

	write("{method: orders.v1.OrderService/ListOrders, routing_key: orders.get}")
	if err := a.Reload("test"); err != nil {
		t.Fatalf("Reload of a good file = %v", err)
	}
	if _, err := getOrder(); status.Code(err) != codes.Unimplemented {
		t.Errorf("GetOrder after a reload took its route away, with no legacy service = %v; want UNIMPLEMENTED", err)
	}
}
