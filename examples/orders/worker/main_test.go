package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
)

func TestMain(m *testing.M) { rabbitmq.Main(m) }

// client plays figway: it publishes calls to exchange "orders" and reads
// the replies on direct reply-to.
type client struct {
	t       *testing.T
	ch      *amqp.Channel
	replies <-chan amqp.Delivery
}

func (c *client) publish(method string, req proto.Message, rpc bool) string {
	c.t.Helper()
	body, err := proto.Marshal(req)
	if err != nil {
		c.t.Fatal(err)
	}
	r := wire.Request{Method: method, Body: body, ContentType: wire.ContentTypeProtobuf, MessageID: wire.NewID(), Persistent: !rpc}
	if rpc {
		r.CorrelationID, r.ReplyTo, r.Deadline = wire.NewID(), wire.DirectReplyTo, time.Now().Add(10*time.Second)
	}
	if err := c.ch.PublishWithContext(context.Background(), "orders", "orders.x", false, false, amqpwire.Publishing(&r, time.Now())); err != nil {
		c.t.Fatal(err)
	}
	return r.MessageID
}

// call makes an rpc call and returns the reply's status code, decoding
// the body into resp.
func (c *client) call(method string, req, resp proto.Message) codes.Code {
	c.t.Helper()
	c.publish(method, req, true)
	select {
	case d := <-c.replies:
		st, err := wire.ReplyStatus(d.Headers)
		if err != nil {
			c.t.Fatal(err)
		}
		if st.Code() == codes.OK {
			if err := proto.Unmarshal(d.Body, resp); err != nil {
				c.t.Fatal(err)
			}
		}
		return st.Code()
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s: no reply", method)
	}
	return 0
}

func TestOrdersWorker(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	ch := rabbitmq.Channel(t, url)
	replies, err := ch.Consume(wire.DirectReplyTo, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, ch: ch, replies: replies}

	// Declare the topology as figway does (figway.yaml), so that no call
	// is published before the queue exists; the worker's declaration
	// matches it.
	if err := ch.ExchangeDeclare("orders", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("orders.requests", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("orders.requests", "orders.#", "orders", false, nil); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-amqp", url}, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run = %v", err)
		}
	})

	var o1 ordersv1.Order
	if code := c.call(ordersv1.OrderService_GetOrder_FullMethodName, &ordersv1.GetOrderRequest{OrderId: "o-1"}, &o1); code != codes.OK {
		t.Fatalf("GetOrder(o-1) = %v", code)
	}
	if o1.GetCustomerId() != "c-1" || len(o1.GetItems()) != 2 || o1.GetTotalCents() != 2*1250+8900 {
		t.Errorf("GetOrder(o-1) = %v; want the seeded order", &o1)
	}
	if code := c.call(ordersv1.OrderService_GetOrder_FullMethodName, &ordersv1.GetOrderRequest{OrderId: "o-404"}, &ordersv1.Order{}); code != codes.NotFound {
		t.Errorf("GetOrder(o-404) = %v; want NotFound", code)
	}

	// PlaceOrder as figway's event route sends it: no reply; the order's id
	// is the event id the caller was given.
	place := &ordersv1.PlaceOrderRequest{CustomerId: "c-2", Note: "n", RequestId: "r-1",
		Items: []*ordersv1.LineItem{{Sku: "s", Quantity: 3, UnitPriceCents: 100}}}
	eventID := c.publish(ordersv1.OrderService_PlaceOrder_FullMethodName, place, false)
	var placed ordersv1.Order
	poll.Until(t, 10*time.Second, "GetOrder(event id) finding the placed order", func() bool {
		code := c.call(ordersv1.OrderService_GetOrder_FullMethodName, &ordersv1.GetOrderRequest{OrderId: eventID}, &placed)
		if code != codes.OK && code != codes.NotFound {
			t.Fatalf("GetOrder(event id) = %v; want the placed order", code)
		}
		return code == codes.OK
	})
	if placed.GetTotalCents() != 300 || placed.GetStatus() != ordersv1.OrderStatus_ORDER_STATUS_PLACED {
		t.Errorf("placed order = %v; want total 300, PLACED", &placed)
	}
	// A retry with the same request_id, as an rpc, returns the same order.
	var again ordersv1.Order
	if code := c.call(ordersv1.OrderService_PlaceOrder_FullMethodName, place, &again); code != codes.OK || again.GetOrderId() != eventID {
		t.Errorf("PlaceOrder retry = %v, %q; want OK, %q", code, again.GetOrderId(), eventID)
	}

	var list ordersv1.ListOrdersResponse
	if code := c.call(ordersv1.OrderService_ListOrders_FullMethodName, &ordersv1.ListOrdersRequest{PageSize: 1}, &list); code != codes.OK {
		t.Fatalf("ListOrders = %v", code)
	}
	if len(list.GetOrders()) != 1 || list.GetOrders()[0].GetOrderId() != eventID || list.GetNextPageToken() == "" {
		t.Fatalf("ListOrders page 1 = %v; want the newest order and a next page", &list)
	}
	var page2 ordersv1.ListOrdersResponse
	c.call(ordersv1.OrderService_ListOrders_FullMethodName, &ordersv1.ListOrdersRequest{PageSize: 1, PageToken: list.GetNextPageToken()}, &page2)
	if len(page2.GetOrders()) != 1 || page2.GetOrders()[0].GetOrderId() != "o-1" || page2.GetNextPageToken() != "" {
		t.Errorf("ListOrders page 2 = %v; want o-1 and no next page", &page2)
	}
	var byCustomer ordersv1.ListOrdersResponse
	c.call(ordersv1.OrderService_ListOrders_FullMethodName, &ordersv1.ListOrdersRequest{CustomerId: "c-1"}, &byCustomer)
	if diff := cmp.Diff(&ordersv1.ListOrdersResponse{Orders: []*ordersv1.Order{&o1}}, &byCustomer, protocmp.Transform()); diff != "" {
		t.Errorf("ListOrders(customer c-1) (-want +got):\n%s", diff)
	}

	for i := range 2 { // cancelling twice is a no-op the second time
		var cancelled ordersv1.Order
		code := c.call(ordersv1.OrderService_CancelOrder_FullMethodName, &ordersv1.CancelOrderRequest{OrderId: "o-1", Reason: "test"}, &cancelled)
		if code != codes.OK || cancelled.GetStatus() != ordersv1.OrderStatus_ORDER_STATUS_CANCELLED {
			t.Errorf("CancelOrder(o-1) #%d = %v, %v; want OK, CANCELLED", i+1, code, cancelled.GetStatus())
		}
	}
}
