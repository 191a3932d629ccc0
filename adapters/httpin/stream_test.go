package httpin_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/adapters/httpin"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/core"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

// streamRoutes routes the demo's WatchOrder to the broker, with a REST
// binding of its own.
const streamRoutes = `
descriptors: [DESCRIPTORS]
broker: {url: "BROKER", channels: 2}
defaults: {timeout: 5s}
routes:
  - method: orders.v1.OrderService/WatchOrder
    exchange: orders
    routing_key: orders.watch
    http: {get: "/v1/orders/{order_id}:watch"}
topology:
  exchanges: [{name: orders, type: topic}]
  queues: [{name: orders.requests, bind: {exchange: orders, key: "orders.#"}}]
`

// startStreamBridge runs figway's REST ingress over the demo's
// descriptors and a worker whose WatchOrder sends as many events as the
// order id says ("3": three; "fail-2": two, then NOT_FOUND).
func startStreamBridge(t *testing.T) string {
	t.Helper()
	url := rabbitmq.ForTest(t).NewVHost(t)
	running := core.Start(t, streamRoutes, url, "../../examples/orders/orders.binpb", nil)
	srv, err := httpin.New(running.Gateway, httpin.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	addr := core.Serve(t, func(ctx context.Context, lis net.Listener) error { return srv.Serve(ctx, lis, time.Second) })

	w := worker.New(worker.Config{URL: url, Queue: "orders.requests", Logger: slog.New(slog.DiscardHandler)})
	worker.HandleStream(w, "orders.v1.OrderService/WatchOrder", func(_ context.Context, req *ordersv1.WatchOrderRequest, send func(*ordersv1.OrderEvent) error) error {
		var n int
		id := req.GetOrderId()
		fmt.Sscanf(strings.TrimPrefix(id, "fail-"), "%d", &n)
		for i := range n {
			if err := send(&ordersv1.OrderEvent{OrderId: fmt.Sprint("o", i), Status: ordersv1.OrderStatus_ORDER_STATUS_PAID}); err != nil {
				return err
			}
		}
		if strings.HasPrefix(id, "fail-") {
			return status.Error(codes.NotFound, "no such order")
		}
		return nil
	})
	fault.RunWorker(t, w)
	fault.WaitConsuming(t, w)
	return "http://" + addr
}

// curl runs curl with args and returns its output: the answer's status
// line and headers (-i), then the body as it came.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	return strings.ReplaceAll(proc.Curl(t, append([]string{"-sS", "-N", "-i"}, args...)...), "\r\n", "\n")
}

func TestStreamOverREST(t *testing.T) {
	base := startStreamBridge(t)
	tests := []struct {
		name, path, accept string
		status             string
		ctype              string
		body               string
	}{
		{"ndjson", "/v1/orders/3:watch", "", "HTTP/1.1 200 OK", "application/json",
			`{"result":{"orderId":"o0","status":"ORDER_STATUS_PAID"}}` + "\n" +
				`{"result":{"orderId":"o1","status":"ORDER_STATUS_PAID"}}` + "\n" +
				`{"result":{"orderId":"o2","status":"ORDER_STATUS_PAID"}}` + "\n"},
		{"ndjson, failed end", "/v1/orders/fail-1:watch", "", "HTTP/1.1 200 OK", "application/json",
			`{"result":{"orderId":"o0","status":"ORDER_STATUS_PAID"}}` + "\n" +
				`{"error":{"code":5,"message":"no such order"}}` + "\n"},
		{"ndjson, failed at once", "/v1/orders/fail-0:watch", "", "HTTP/1.1 404 Not Found", "application/json",
			`{"error":{"code":5,"message":"no such order"}}` + "\n"},
		{"empty", "/v1/orders/0:watch", "", "HTTP/1.1 200 OK", "application/json", ""},
		{"event stream", "/v1/orders/2:watch", "text/event-stream", "HTTP/1.1 200 OK", "text/event-stream",
			`data: {"orderId":"o0","status":"ORDER_STATUS_PAID"}` + "\n\n" +
				`data: {"orderId":"o1","status":"ORDER_STATUS_PAID"}` + "\n\n"},
		{"event stream, failed end", "/v1/orders/fail-1:watch", "text/event-stream", "HTTP/1.1 200 OK", "text/event-stream",
			`data: {"orderId":"o0","status":"ORDER_STATUS_PAID"}` + "\n\n" +
				"event: error\n" + `data: {"code":5,"message":"no such order"}` + "\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{base + tt.path}
			if tt.accept != "" {
				args = append(args, "-H", "Accept: "+tt.accept)
			}
			out := curl(t, args...)
			t.Logf("curl output:\n%s", out)
			head, body, _ := strings.Cut(out, "\n\n")
			if !strings.HasPrefix(head, tt.status+"\n") {
				t.Errorf("status line of %q; want %s", head, tt.status)
			}
			if want := "Content-Type: " + tt.ctype; !strings.Contains(head, want) {
				t.Errorf("headers %q lack %s", head, want)
			}
			if body != tt.body {
				t.Errorf("body =\n%s\nwant\n%s", body, tt.body)
			}
		})
	}
}

// TestStreamInOpenAPI checks that /openapi.json describes a streaming
// route as the stream it answers: newline-delimited {"result"} and
// {"error"} lines, or server-sent events.
func TestStreamInOpenAPI(t *testing.T) {
	cfg, _ := core.Load(t, streamRoutes, "amqp://guest:guest@127.0.0.1:1/", "../../examples/orders/orders.binpb")
	table, err := cfg.Table(nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := httpin.OpenAPI(table, httpin.Options{})
	if err != nil {
		t.Fatalf("OpenAPI: %v", err)
	}
	newValidator(t, raw)
	doc := jsonValue(t, raw)
	ok := jsonPath(t, doc, "paths", "/v1/orders/{order_id}:watch", "get", "responses", "200")
	if d, _ := jsonPath(t, ok, "description").(string); !strings.HasPrefix(d, "A stream of orders.v1.OrderEvent messages") {
		t.Errorf("200's description = %q; want it to say the answer is a stream", d)
	}
	line := jsonPath(t, ok, "content", "application/json", "schema", "properties")
	if got := jsonPath(t, line, "result", "$ref"); got != "#/components/schemas/orders.v1.OrderEvent" {
		t.Errorf("a line's result = %v; want the OrderEvent schema", got)
	}
	if got := jsonPath(t, line, "error", "$ref"); got != "#/components/schemas/google.rpc.Status" {
		t.Errorf("a line's error = %v; want the Status schema", got)
	}
	if got := jsonPath(t, ok, "content", "text/event-stream", "schema", "type"); got != "string" {
		t.Errorf("text/event-stream schema type = %v; want string", got)
	}
}
