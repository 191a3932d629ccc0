package grpcin_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/figway/figway/adapters/legacy"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/worker"
)

// legacyOrders answers every method, marking its replies as legacy ones.
type legacyOrders struct {
	ordersv1.UnimplementedOrderServiceServer
}

func (legacyOrders) GetOrder(_ context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
	return &ordersv1.Order{OrderId: req.GetOrderId(), Note: "legacy"}, nil
}

func (legacyOrders) ListOrders(context.Context, *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
	return &ordersv1.ListOrdersResponse{NextPageToken: "legacy"}, nil
}

func (legacyOrders) WatchOrder(req *ordersv1.WatchOrderRequest, s grpc.ServerStreamingServer[ordersv1.OrderEvent]) error {
	for range 3 {
		if err := s.Send(&ordersv1.OrderEvent{OrderId: req.GetOrderId()}); err != nil {
			return err
		}
	}
	return nil
}

func startLegacy(t *testing.T) *legacy.GRPC {
	t.Helper()
	p, err := legacy.DialGRPC(figway.ServeLegacy(t, legacyOrders{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestUnroutedCallsGoToLegacy: with a legacy upstream, a method with no
// route (unary or streaming) or with `to: legacy` is proxied to it, while
// routed methods still go to the broker.
func TestUnroutedCallsGoToLegacy(t *testing.T) {
	lp := startLegacy(t)
	routes := strings.Replace(routesTmpl, "routes:\n", "legacy: {grpc: 127.0.0.1:1}\nroutes:\n  - {method: orders.v1.OrderService/ListOrders, to: legacy}\n", 1)
	b := startBridge(t, routes, lp)
	startWorker(t, b.url, func(w *worker.Worker) {
		worker.Handle(w, "orders.v1.OrderService/GetOrder", func(_ context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
			return &ordersv1.Order{OrderId: req.GetOrderId(), Note: "worker"}, nil
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	o, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
	if err != nil || o.GetNote() != "worker" {
		t.Errorf("GetOrder (routed) = %v, %v; want the worker's answer", o, err)
	}
	l, err := b.client.ListOrders(ctx, &ordersv1.ListOrdersRequest{})
	if err != nil || l.GetNextPageToken() != "legacy" {
		t.Errorf("ListOrders (to: legacy) = %v, %v; want the legacy answer", l, err)
	}
	stream, err := b.client.WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: "o-2"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil || ev.GetOrderId() != "o-2" {
			t.Fatalf("WatchOrder (no route) event %d = %v, %v", n, ev, err)
		}
		n++
	}
	if n != 3 {
		t.Errorf("WatchOrder passed %d events; want 3", n)
	}
}
