package grpcin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/resilience"
	"github.com/figway/figway/wire"
)

// TestBadReplyBodyIsInternal: a worker whose reply body is not a message
// of the method's output type, on a protobuf route, once reached gRPC
// callers as OK with the bytes as they came (REST answered 502). Now the
// call fails INTERNAL, with figway's own words only, and counts against
// the route's breaker; a valid reply still passes.
func TestBadReplyBodyIsInternal(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	b := startBridgeAt(t, url, strings.Replace(routesTmpl, "routing_key: orders.get}",
		"routing_key: orders.get, breaker: {failures: 2, open_for: 1h}}", 1))
	valid, err := proto.Marshal(order("o-1"))
	if err != nil {
		t.Fatal(err)
	}
	// The raw worker answers each request with the body its order id names.
	bodies := map[string][]byte{
		"valid": valid,
		"html":  []byte("<html><body>502 Bad Gateway</body></html>"),
		// A valid Order, its last byte cut.
		"cut": valid[:len(valid)-1],
	}
	if err := proto.Unmarshal(bodies["cut"], &ordersv1.Order{}); err == nil {
		t.Fatal("the cut Order decodes; the test needs one that does not")
	}
	ch, ds := rawConsumer(t, url)
	go func() {
		for d := range ds {
			var req ordersv1.GetOrderRequest
			_ = proto.Unmarshal(d.Body, &req)
			_ = ch.Publish("", d.ReplyTo, false, false, amqp091.Publishing{
				CorrelationId: d.CorrelationId, ContentType: wire.ContentTypeProtobuf, Body: bodies[req.GetOrderId()],
			})
		}
	}()

	call := func(id string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: id})
		return err
	}
	if err := call("valid"); err != nil {
		t.Fatalf("GetOrder(valid) = %v; want OK", err)
	}
	route := b.gw.Table().Lookup("orders.v1.OrderService/GetOrder")
	for _, id := range []string{"html", "cut"} {
		if route.BreakerState() != resilience.BreakerClosed {
			t.Fatalf("breaker %v before GetOrder(%s); want closed", route.BreakerState(), id)
		}
		st := status.Convert(call(id))
		if st.Code() != codes.Internal || st.Message() != "bad reply" {
			t.Errorf("GetOrder(%s) = %v %q; want Internal \"bad reply\"", id, st.Code(), st.Message())
		}
	}
	if s := route.BreakerState(); s != resilience.BreakerOpen {
		t.Errorf("breaker after two bad replies = %v; want open: they count as failures", s)
	}
}
