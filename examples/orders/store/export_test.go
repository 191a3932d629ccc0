package store

import (
	"context"
	"log/slog"
	"testing"
	"time"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
)

func TestExportOrders(t *testing.T) {
	s := New(slog.New(slog.DiscardHandler), nil)
	start := time.Now()
	got, err := s.ExportOrders(context.Background(), &ordersv1.ExportOrdersRequest{CustomerId: "c-1"}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetOrderCount() != 1 || got.GetTotalCents() != 2*1250+8900 || got.GetCsv() != "o-1,c-1,ORDER_STATUS_PLACED,11400\n" {
		t.Errorf("ExportOrders(c-1) = %v", got)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Errorf("ExportOrders took %v; want at least its pause", time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.ExportOrders(ctx, &ordersv1.ExportOrdersRequest{}, time.Hour); err == nil {
		t.Error("ExportOrders with its caller gone = nil error; want CANCELLED")
	}
}
