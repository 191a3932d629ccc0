// Package store is the in-memory orders store of the demo. Both sides of
// the strangler fig serve from it: the legacy gRPC service
// (examples/orders/legacy) and the migrated worker (examples/orders/worker),
// so that shadowed calls can be compared answer for answer.
package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
)

// Store holds the orders in memory and implements OrderService's unary
// methods, with the signatures of both a gRPC server and worker handlers.
// Handlers run concurrently: mu guards the maps, and every order handed
// out is a copy, encoded after the handler returns and the lock is gone.
type Store struct {
	log *slog.Logger
	// idFor names a new order; "" lets the store pick a random id.
	idFor func(context.Context) string

	mu        sync.Mutex
	orders    map[string]*ordersv1.Order
	byRequest map[string]string // PlaceOrder request_id → order id
}

// New returns a store seeded with order o-1. idFor, if not nil, names the
// orders PlaceOrder creates (the worker uses the event id figway gave the
// call, so the caller can GetOrder it); when it is nil or returns "", the
// store picks a random id.
func New(log *slog.Logger, idFor func(context.Context) string) *Store {
	// The seed is the same on both sides, to the nanosecond, so shadow
	// comparisons of o-1 match.
	now := timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	return &Store{
		log:       log,
		idFor:     idFor,
		byRequest: map[string]string{},
		orders: map[string]*ordersv1.Order{"o-1": {
			OrderId:    "o-1",
			CustomerId: "c-1",
			Items: []*ordersv1.LineItem{
				{Sku: "sku-espresso-beans", Quantity: 2, UnitPriceCents: 1250},
				{Sku: "sku-grinder", Quantity: 1, UnitPriceCents: 8900},
			},
			Status:     ordersv1.OrderStatus_ORDER_STATUS_PLACED,
			TotalCents: 2*1250 + 8900,
			Note:       "seeded",
			CreatedAt:  now,
			UpdatedAt:  now,
		}},
	}
}

func (s *Store) GetOrder(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.find(req.GetOrderId())
	if err != nil {
		return nil, err
	}
	return proto.CloneOf(o), nil
}

const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// ListOrders pages through the matching orders, newest first. The page
// token is the id of the last order of the previous page: orders are never
// deleted, so a page does not shift when new orders arrive.
func (s *Store) ListOrders(ctx context.Context, req *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, status.Errorf(codes.InvalidArgument, "page_size %d is negative", size)
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var match []*ordersv1.Order
	for _, o := range s.orders {
		if (req.GetCustomerId() == "" || o.GetCustomerId() == req.GetCustomerId()) &&
			(req.GetStatus() == ordersv1.OrderStatus_ORDER_STATUS_UNSPECIFIED || o.GetStatus() == req.GetStatus()) {
			match = append(match, o)
		}
	}
	slices.SortFunc(match, func(a, b *ordersv1.Order) int {
		return cmp.Or(b.GetCreatedAt().AsTime().Compare(a.GetCreatedAt().AsTime()), cmp.Compare(b.GetOrderId(), a.GetOrderId()))
	})
	if tok := req.GetPageToken(); tok != "" {
		i := slices.IndexFunc(match, func(o *ordersv1.Order) bool { return o.GetOrderId() == tok })
		if i < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "page_token %q is not from this query", tok)
		}
		match = match[i+1:]
	}
	resp := &ordersv1.ListOrdersResponse{}
	for _, o := range match[:min(size, len(match))] {
		resp.Orders = append(resp.Orders, proto.CloneOf(o))
	}
	if len(match) > size {
		resp.NextPageToken = match[size-1].GetOrderId()
	}
	return resp, nil
}

// PlaceOrder creates an order, named by idFor. A redelivered event, or a
// retry with the same request_id, returns the order placed the first time.
func (s *Store) PlaceOrder(ctx context.Context, req *ordersv1.PlaceOrderRequest) (*ordersv1.Order, error) {
	if req.GetCustomerId() == "" {
		return nil, status.Error(codes.InvalidArgument, "customer_id is required")
	}
	if len(req.GetItems()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "an order needs at least one item")
	}
	var total int64
	for i, it := range req.GetItems() {
		if it.GetSku() == "" || it.GetQuantity() < 1 || it.GetUnitPriceCents() < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "items[%d]: want a sku, quantity ≥ 1 and unit_price_cents ≥ 0", i)
		}
		total += int64(it.GetQuantity()) * it.GetUnitPriceCents()
	}
	var id string
	if s.idFor != nil {
		id = s.idFor(ctx)
	}
	if id == "" {
		id = "o-" + rand.Text()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.byRequest[req.GetRequestId()]; ok { // "" is never stored
		id = prev
	}
	if o, ok := s.orders[id]; ok {
		return proto.CloneOf(o), nil
	}
	now := timestamppb.New(time.Now())
	o := &ordersv1.Order{
		OrderId:    id,
		CustomerId: req.GetCustomerId(),
		Items:      req.GetItems(),
		Status:     ordersv1.OrderStatus_ORDER_STATUS_PLACED,
		TotalCents: total,
		Note:       req.GetNote(),
		CreatedAt:  now,
		UpdatedAt:  now,
	}
	s.orders[id] = o
	if req.GetRequestId() != "" {
		s.byRequest[req.GetRequestId()] = id
	}
	s.log.InfoContext(ctx, "order placed", "order_id", id, "customer_id", o.GetCustomerId(), "total_cents", total)
	return proto.CloneOf(o), nil
}

// CancelOrder cancels an order that has not shipped. As the API says,
// cancelling a cancelled order changes nothing and succeeds.
func (s *Store) CancelOrder(ctx context.Context, req *ordersv1.CancelOrderRequest) (*ordersv1.Order, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.find(req.GetOrderId())
	if err != nil {
		return nil, err
	}
	switch o.GetStatus() {
	case ordersv1.OrderStatus_ORDER_STATUS_SHIPPED:
		return nil, status.Errorf(codes.FailedPrecondition, "order %q has shipped and can no longer be cancelled", o.GetOrderId())
	case ordersv1.OrderStatus_ORDER_STATUS_CANCELLED:
	default:
		o.Status, o.UpdatedAt = ordersv1.OrderStatus_ORDER_STATUS_CANCELLED, timestamppb.Now()
		s.log.InfoContext(ctx, "order cancelled", "order_id", o.GetOrderId(), "reason", req.GetReason())
	}
	return proto.CloneOf(o), nil
}

// find returns the order with id, or the status a handler returns. s.mu is held.
func (s *Store) find(id string) (*ordersv1.Order, error) {
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "order_id is required")
	}
	o, ok := s.orders[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "order %q not found", id)
	}
	return o, nil
}
