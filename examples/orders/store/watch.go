package store

import (
	"context"
	"time"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
)

// WatchOrder sends the order's status now and then once every every,
// times events in all, with send: a gRPC server's stream.Send or a worker's
// streaming send. It returns when it has sent them, when the order is not
// found (NOT_FOUND), or when ctx ends (the caller went away).
func (s *Store) WatchOrder(ctx context.Context, req *ordersv1.WatchOrderRequest, send func(*ordersv1.OrderEvent) error, every time.Duration, times int) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for i := range times {
		o, err := s.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: req.GetOrderId()})
		if err != nil {
			return err
		}
		if err := send(&ordersv1.OrderEvent{OrderId: o.GetOrderId(), Status: o.GetStatus(), At: o.GetUpdatedAt()}); err != nil {
			return err
		}
		if i == times-1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
