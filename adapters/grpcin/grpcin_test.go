package grpcin_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

func order(id string) *ordersv1.Order {
	return &ordersv1.Order{
		OrderId: id, CustomerId: "c-1", Status: ordersv1.OrderStatus_ORDER_STATUS_PLACED, TotalCents: 2500,
		Items: []*ordersv1.LineItem{{Sku: "book", Quantity: 2, UnitPriceCents: 1250}},
	}
}

func TestUnaryRoundTrip(t *testing.T) {
	b := startBridge(t, routesTmpl)
	type seen struct {
		tenant      []string
		traceparent string
		deadline    time.Time
	}
	got := make(chan seen, 1)
	startWorker(t, b.url, func(w *worker.Worker) {
		worker.Handle(w, "orders.v1.OrderService/GetOrder", func(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
			tp, _ := worker.TraceContext(ctx)
			dl, _ := ctx.Deadline()
			got <- seen{worker.Metadata(ctx)["x-tenant-id"], tp, dl}
			return order(req.GetOrderId()), nil
		})
	})

	const callerTrace = "0af7651916cd43dd8448eb211c80319c"
	ctx := metadata.AppendToOutgoingContext(context.Background(),
		"x-tenant-id", "acme", "x-secret", "not forwarded",
		"traceparent", "00-"+callerTrace+"-b7ad6b7169203331-01")
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
	if err != nil {
		t.Fatalf("GetOrder: %v", err)
	}
	if diff := cmp.Diff(order("o-1"), resp, protocmp.Transform()); diff != "" {
		t.Errorf("GetOrder reply (-want +got):\n%s", diff)
	}
	s := <-got
	if !cmp.Equal(s.tenant, []string{"acme"}) {
		t.Errorf("worker saw x-tenant-id %v; want [acme]", s.tenant)
	}
	if !strings.HasPrefix(s.traceparent, "00-"+callerTrace+"-") || strings.Contains(s.traceparent, "b7ad6b7169203331") {
		t.Errorf("worker saw traceparent %q; want the caller's trace id with figway's own parent id", s.traceparent)
	}
	callerDeadline, _ := ctx.Deadline()
	if d := s.deadline.Sub(callerDeadline); d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("worker deadline %v differs from the caller's by %v", s.deadline, d)
	}
}

func TestWorkerStatusReachesCaller(t *testing.T) {
	b := startBridge(t, routesTmpl)
	startWorker(t, b.url, func(w *worker.Worker) {
		worker.Handle(w, "orders.v1.OrderService/GetOrder", func(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
			st, _ := status.New(codes.NotFound, "order "+req.GetOrderId()+" not found").
				WithDetails(&errdetails.ResourceInfo{ResourceType: "order", ResourceName: req.GetOrderId()})
			return nil, st.Err()
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-404"})
	st := status.Convert(err)
	if st.Code() != codes.NotFound || st.Message() != "order o-404 not found" {
		t.Fatalf("GetOrder error = %v; want NotFound 'order o-404 not found'", err)
	}
	want := []any{&errdetails.ResourceInfo{ResourceType: "order", ResourceName: "o-404"}}
	if diff := cmp.Diff(want, st.Details(), protocmp.Transform()); diff != "" {
		t.Errorf("details (-want +got):\n%s", diff)
	}
}

// rawQueue consumes the routes' queue by hand, to see requests as they are
// on the wire.
func rawQueue(t *testing.T, url string) <-chan amqp091.Delivery {
	t.Helper()
	_, ds := rawConsumer(t, url)
	return ds
}

// rawConsumer is rawQueue with the channel it consumes on, to answer on.
func rawConsumer(t *testing.T, url string) (*amqp091.Channel, <-chan amqp091.Delivery) {
	t.Helper()
	ch := rabbitmq.Channel(t, url)
	ds, err := ch.Consume("orders.requests", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ch, ds
}

func TestCallerDeadlineShorterThanRouteWins(t *testing.T) {
	b := startBridge(t, routesTmpl) // route timeout 5s
	ds := rawQueue(t, b.url)
	const callerTimeout = 400 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), callerTimeout)
	defer cancel()
	start := time.Now()
	_, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
	took := time.Since(start)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("GetOrder with nobody answering: %v; want DeadlineExceeded", err)
	}
	if took > callerTimeout+200*time.Millisecond {
		t.Errorf("DeadlineExceeded after %v; want within %v + 200ms", took, callerTimeout)
	}
	d := <-ds
	ms, err := strconv.Atoi(d.Expiration)
	if err != nil || ms > int(callerTimeout/time.Millisecond) || ms < 100 {
		t.Errorf("expiration = %q; want the caller's remaining ms (≤ 400), not the route's 5000", d.Expiration)
	}
	dl, _ := time.Parse(time.RFC3339Nano, d.Headers["figway-deadline"].(string))
	callerDeadline, _ := ctx.Deadline()
	// grpc-timeout is relative: the server's deadline is the caller's
	// plus the request's transit, milliseconds on a loaded machine; the
	// route's would be 5s away.
	if diff := dl.Sub(callerDeadline); diff < -time.Millisecond || diff > 50*time.Millisecond {
		t.Errorf("figway-deadline %v; want the caller's %v (+ transit)", dl, callerDeadline)
	}
	// The caller's own deadline fires on the client side at the same
	// moment as figway's; give the server's handler a moment to unwind.
	poll.Until(t, 10*time.Second, "no call pending after the deadline", func() bool { return b.amqp.Stats().Pending == 0 })
}

func TestRouteTimeoutShorterThanCallerWins(t *testing.T) {
	b := startBridge(t, strings.Replace(routesTmpl, "routing_key: orders.get}", "routing_key: orders.get, timeout: 300ms}", 1))
	ds := rawQueue(t, b.url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("GetOrder: %v; want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("DeadlineExceeded after %v; want the route's 300ms, well before the caller's 5s", took)
	}
	d := <-ds
	if ms, err := strconv.Atoi(d.Expiration); err != nil || ms > 300 {
		t.Errorf("expiration = %q; want ≤ 300, the route's timeout", d.Expiration)
	}
}

func TestEventAnswersWithEventID(t *testing.T) {
	b := startBridge(t, routesTmpl)
	got := make(chan string, 1)
	startWorker(t, b.url, func(w *worker.Worker) {
		worker.Handle(w, "orders.v1.OrderService/PlaceOrder", func(ctx context.Context, req *ordersv1.PlaceOrderRequest) (*ordersv1.Order, error) {
			got <- worker.EventID(ctx) + " " + req.GetCustomerId()
			return &ordersv1.Order{}, nil
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var header metadata.MD
	resp, err := b.client.PlaceOrder(ctx, &ordersv1.PlaceOrderRequest{CustomerId: "c-7"}, grpc.Header(&header))
	if err != nil {
		t.Fatalf("PlaceOrder: %v", err)
	}
	ids := header.Get("figway-event-id")
	if len(ids) != 1 || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(ids[0]) {
		t.Fatalf("figway-event-id = %v; want one 32-hex id", ids)
	}
	if diff := cmp.Diff(&ordersv1.Order{}, resp, protocmp.Transform()); diff != "" {
		t.Errorf("event answer (-want +got):\n%s", diff)
	}
	if w := <-got; w != ids[0]+" c-7" {
		t.Errorf("worker saw %q; want %q", w, ids[0]+" c-7")
	}
}

func TestErrorsBeforeTheBroker(t *testing.T) {
	b := startBridge(t, routesTmpl)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()

	_, err := b.client.ListOrders(ctx, &ordersv1.ListOrdersRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("ListOrders (no route): %v; want Unimplemented", err)
	}
	_, err = b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: strings.Repeat("x", 5000)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("GetOrder over max_request_bytes: %v; want ResourceExhausted", err)
	}
	stream, err := b.client.WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: "o-1"})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("WatchOrder (streaming, no route): %v; want Unimplemented", err)
	}
}

func TestUnroutableIsUnavailableAtOnce(t *testing.T) {
	b := startBridge(t, strings.Replace(routesTmpl, "routing_key: orders.get}", "routing_key: nobody.listens}", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("GetOrder to an unbound key: %v; want Unavailable", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Unavailable after %v; want well before the 5s deadline", took)
	}
}

func TestBulkheadRefusesAtOnce(t *testing.T) {
	b := startBridge(t, routesTmpl) // CancelOrder: max_in_flight 2
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	startWorker(t, b.url, func(w *worker.Worker) {
		worker.Handle(w, "orders.v1.OrderService/CancelOrder", func(ctx context.Context, req *ordersv1.CancelOrderRequest) (*ordersv1.Order, error) {
			entered <- struct{}{}
			<-release
			return order(req.GetOrderId()), nil
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			if _, err := b.client.CancelOrder(ctx, &ordersv1.CancelOrderRequest{OrderId: "o-" + strconv.Itoa(i)}); err != nil {
				t.Errorf("CancelOrder %d: %v", i, err)
			}
		})
	}
	<-entered
	<-entered
	start := time.Now()
	_, err := b.client.CancelOrder(ctx, &ordersv1.CancelOrderRequest{OrderId: "o-3"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("third CancelOrder: %v; want ResourceExhausted", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("refused after %v; want at once, well before the 5s deadline", took)
	}
	close(release)
	wg.Wait()
}
