package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
)

// ExportOrders summarizes the orders of a customer (all customers when
// customer_id is empty), oldest first, after taking pause: the demo's slow
// method, which figway answers REST callers asynchronously.
func (s *Store) ExportOrders(ctx context.Context, req *ordersv1.ExportOrdersRequest, pause time.Duration) (*ordersv1.ExportOrdersResponse, error) {
	s.mu.Lock()
	var match []*ordersv1.Order
	for _, o := range s.orders {
		if req.GetCustomerId() == "" || o.GetCustomerId() == req.GetCustomerId() {
			match = append(match, o)
		}
	}
	slices.SortFunc(match, func(a, b *ordersv1.Order) int {
		return cmp.Or(a.GetCreatedAt().AsTime().Compare(b.GetCreatedAt().AsTime()), cmp.Compare(a.GetOrderId(), b.GetOrderId()))
	})
	resp := &ordersv1.ExportOrdersResponse{OrderCount: int32(len(match))}
	var csv strings.Builder
	for _, o := range match {
		resp.TotalCents += o.GetTotalCents()
		fmt.Fprintf(&csv, "%s,%s,%s,%d\n", o.GetOrderId(), o.GetCustomerId(), o.GetStatus(), o.GetTotalCents())
	}
	resp.Csv = csv.String()
	s.mu.Unlock()

	select {
	case <-time.After(pause):
		return resp, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}
