package store

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
)

// TestCancelShipped checks the one rule the API cannot reach: a shipped
// order cannot be cancelled.
func TestCancelShipped(t *testing.T) {
	s := New(slog.New(slog.DiscardHandler), nil)
	s.orders["o-1"].Status = ordersv1.OrderStatus_ORDER_STATUS_SHIPPED
	_, err := s.CancelOrder(context.Background(), &ordersv1.CancelOrderRequest{OrderId: "o-1"})
	if got := status.Code(err); got != codes.FailedPrecondition {
		t.Errorf("CancelOrder(shipped) = %v; want FailedPrecondition", err)
	}
}

func TestPlaceOrderIDs(t *testing.T) {
	ctx := context.Background()
	req := &ordersv1.PlaceOrderRequest{CustomerId: "c", Items: []*ordersv1.LineItem{{Sku: "a", Quantity: 2, UnitPriceCents: 5}}}
	named := New(slog.New(slog.DiscardHandler), func(context.Context) string { return "o-event" })
	if o, err := named.PlaceOrder(ctx, req); err != nil || o.GetOrderId() != "o-event" || o.GetTotalCents() != 10 {
		t.Errorf("PlaceOrder with idFor = %v, %v; want o-event, total 10", o, err)
	}
	random := New(slog.New(slog.DiscardHandler), nil)
	a, _ := random.PlaceOrder(ctx, req)
	b, _ := random.PlaceOrder(ctx, req)
	if a.GetOrderId() == "" || a.GetOrderId() == b.GetOrderId() {
		t.Errorf("PlaceOrder without idFor gave ids %q and %q; want two distinct ids", a.GetOrderId(), b.GetOrderId())
	}
}
