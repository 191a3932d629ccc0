package serve

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/prom"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

const (
	getOrder    = "orders.v1.OrderService/GetOrder"
	cancelOrder = "orders.v1.OrderService/CancelOrder"
	placeOrder  = "orders.v1.OrderService/PlaceOrder"
)

// TestMetricsExactCounts sends known traffic through a served figway — a
// real broker and worker behind it — and checks what /metrics says of it,
// scraped over HTTP and read with the Prometheus text parser. It also
// checks gRPC reflection with a real reflection client, and that the
// worker sees the caller's trace id.
func TestMetricsExactCounts(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	a := figway.NewAddrs(t)
	path := figway.WriteRoutes(t, "", a, url, nil)
	traces := make(chan string, 1)
	w := figway.StartWorker(t, url, traces)
	figway.Serve(t, path, a, true)
	fault.WaitConsuming(t, w)

	conn := figway.Dial(t, a.GRPC)
	orders := ordersv1.NewOrderServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	const caller = "4bf92f3577b34da6a3ce929d0e0e4736"
	tctx := figway.WithMetadata(ctx, "traceparent", "00-"+caller+"-00f067aa0ba902b7-01")
	for i := range 5 {
		c := ctx
		if i == 0 {
			c = tctx
		}
		id := "o-1"
		if i == 0 {
			id = "trace-1"
		}
		if _, err := orders.GetOrder(c, &ordersv1.GetOrderRequest{OrderId: id}); err != nil {
			t.Fatalf("GetOrder: %v", err)
		}
		if i == 0 {
			if tp := <-traces; len(tp) != 55 || tp[3:35] != caller {
				t.Errorf("worker saw traceparent %q; want trace id %s", tp, caller)
			}
		}
	}
	for range 2 {
		if _, err := orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "missing"}); status.Code(err) != codes.NotFound {
			t.Fatalf("GetOrder(missing) = %v; want NotFound", err)
		}
	}
	for range 3 {
		if _, err := orders.PlaceOrder(ctx, &ordersv1.PlaceOrderRequest{CustomerId: "c-1"}); err != nil {
			t.Fatalf("PlaceOrder: %v", err)
		}
	}
	if _, err := orders.CancelOrder(ctx, &ordersv1.CancelOrderRequest{OrderId: "o-1"}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("CancelOrder = %v; want DeadlineExceeded (route timeout 300ms, worker 600ms)", err)
	}
	if _, err := orders.ListOrders(ctx, &ordersv1.ListOrdersRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("ListOrders = %v; want Unimplemented (no route, no legacy)", err)
	}
	for _, p := range []string{"/v1/orders/o-3", "/no/such/path"} {
		figway.HTTPGet("http://" + a.HTTP + p)
	}
	// REST: the traceparent header reaches the worker too.
	req, _ := http.NewRequest(http.MethodGet, "http://"+a.HTTP+"/v1/orders/trace-3", nil)
	req.Header.Set("traceparent", "00-"+caller+"-00f067aa0ba902b7-01")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/orders/trace-3 = %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if tp := <-traces; len(tp) != 55 || tp[3:35] != caller {
		t.Errorf("worker saw traceparent %q from a REST call; want trace id %s", tp, caller)
	}
	// A new trace starts when the caller sends none.
	if _, err := orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "trace-2"}); err != nil {
		t.Fatal(err)
	}
	if tp := <-traces; len(tp) != 55 || tp[3:35] == caller || tp[3:35] == "00000000000000000000000000000000" {
		t.Errorf("worker saw traceparent %q for a call without one; want a new trace id", tp)
	}

	admin := "http://" + a.Admin + "/metrics"
	// The late reply comes back 300ms after the call failed; publisher
	// confirms may trail their replies. 14 publishes: 8 + 2 GetOrder (gRPC,
	// REST), 3 PlaceOrder, 1 CancelOrder.
	var s prom.Scrape
	took := poll.Until(t, 5*time.Second, "late reply and 14 confirms counted", func() bool {
		s = prom.Get(t, admin)
		return s.Value("figway_replies_unmatched_total") == 1 &&
			s.Value("figway_publish_confirm_duration_seconds", "result", "ack") == 14
	})
	t.Logf("late reply and confirms counted %v after the last call", took.Round(time.Millisecond))
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"figway_requests_total", []string{"route", getOrder, "ingress", "grpc", "code", "OK"}, 6},
		{"figway_requests_total", []string{"route", getOrder, "ingress", "grpc", "code", "NotFound"}, 2},
		{"figway_requests_total", []string{"route", placeOrder, "ingress", "grpc", "code", "OK"}, 3},
		{"figway_requests_total", []string{"route", cancelOrder, "ingress", "grpc", "code", "DeadlineExceeded"}, 1},
		{"figway_requests_total", []string{"route", "unrouted", "ingress", "grpc", "code", "Unimplemented"}, 1},
		{"figway_requests_total", []string{"route", getOrder, "ingress", "http", "code", "200"}, 2},
		{"figway_requests_total", []string{"route", "unrouted", "ingress", "http", "code", "404"}, 1},
		{"figway_request_duration_seconds", []string{"route", getOrder, "ingress", "grpc"}, 8},
		{"figway_request_duration_seconds", []string{"route", getOrder, "ingress", "http"}, 2},
		{"figway_requests_in_flight", []string{"route", getOrder}, 0},
		{"figway_route_max_in_flight", []string{"route", getOrder}, 1024},
		{"figway_breaker_state", []string{"route", getOrder, "state", "closed"}, 1},
		{"figway_breaker_state", []string{"route", getOrder, "state", "open"}, 0},
		{"figway_publish_confirm_duration_seconds", []string{"result", "nack"}, -1},
		{"figway_replies_pending", nil, 0},
		{"figway_broker_connected", nil, 1},
		{"figway_broker_blocked", nil, 0},
		{"figway_broker_reconnects_total", nil, 0},
		{"figway_ready", nil, 1},
		{"figway_routes", nil, 3},
		{"figway_config_reloads_total", []string{"result", "ok"}, 0},
		{"figway_config_reloads_total", []string{"result", "failed"}, 0},
		{"figway_config_last_reload_successful", nil, 1},
	} {
		if got := s.Value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v; want %v\n%s", c.name, c.labels, got, c.want, s.Series(c.name))
		}
	}
	if n := len(s["figway_requests_total"].GetMetric()); n != 7 {
		t.Errorf("figway_requests_total has %d series; want the 7 above\n%s", n, s.Series("figway_requests_total"))
	}

	// Reflection: a real grpc.reflection.v1 client lists and describes.
	names := figway.ListServices(t, conn)
	for _, want := range []string{"orders.v1.OrderService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v; want %s among them", names, want)
		}
	}
	rc, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.CloseSend()
	rc.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: "orders.v1.OrderService"}})
	res, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, raw := range res.GetFileDescriptorResponse().GetFileDescriptorProto() {
		var fd descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(raw, &fd); err != nil {
			t.Fatal(err)
		}
		for _, svc := range fd.GetService() {
			for _, m := range svc.GetMethod() {
				methods = append(methods, svc.GetName()+"/"+m.GetName())
			}
		}
	}
	if !slices.Contains(methods, "OrderService/GetOrder") || !slices.Contains(methods, "OrderService/PlaceOrder") {
		t.Errorf("reflection describes methods %v; want OrderService's", methods)
	}
}

// TestReadinessFollowsBroker kills figway's broker and brings it back:
// /readyz, grpc.health.v1 and the broker gauges follow, and the reconnect
// is counted.
func TestReadinessFollowsBroker(t *testing.T) {
	node := rabbitmq.Own(t)
	a := figway.NewAddrs(t)
	path := figway.WriteRoutes(t, "", a, node.URL(), map[string]string{"BROKERX": ", heartbeat: 1s"})
	figway.Serve(t, path, a, true)
	conn := figway.Dial(t, a.GRPC)
	health := healthpb.NewHealthClient(conn)
	serving := func(want healthpb.HealthCheckResponse_ServingStatus) func() bool {
		return func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			h, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
			return err == nil && h.GetStatus() == want
		}
	}
	poll.Until(t, 2*time.Second, "grpc.health.v1 SERVING", serving(healthpb.HealthCheckResponse_SERVING))
	metricsURL := "http://" + a.Admin + "/metrics"

	if err := node.Kill(); err != nil {
		t.Fatal(err)
	}
	took := poll.Until(t, 5*time.Second, "/readyz 503 after the broker died", func() bool {
		code, _ := figway.HTTPGet("http://" + a.Admin + "/readyz")
		return code == http.StatusServiceUnavailable
	})
	t.Logf("/readyz went 503 %v after the broker was killed", took.Round(time.Millisecond))
	poll.Until(t, 2*time.Second, "grpc.health.v1 NOT_SERVING", serving(healthpb.HealthCheckResponse_NOT_SERVING))
	if code, _ := figway.HTTPGet("http://" + a.Admin + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while the broker is down; want 200 (the process is fine)", code)
	}
	s := prom.Get(t, metricsURL)
	if s.Value("figway_ready") != 0 || s.Value("figway_broker_connected") != 0 {
		t.Errorf("figway_ready, figway_broker_connected = %v, %v; want 0, 0", s.Value("figway_ready"), s.Value("figway_broker_connected"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	begin := time.Now()
	if err := node.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("broker restarted in %v", time.Since(begin).Round(time.Millisecond))
	took = poll.Until(t, 20*time.Second, "/readyz 200 after the broker came back", func() bool {
		code, _ := figway.HTTPGet("http://" + a.Admin + "/readyz")
		return code == http.StatusOK
	})
	t.Logf("/readyz back to 200 %v after the restart", took.Round(time.Millisecond))
	poll.Until(t, 2*time.Second, "grpc.health.v1 SERVING again", serving(healthpb.HealthCheckResponse_SERVING))
	s = prom.Get(t, metricsURL)
	if s.Value("figway_ready") != 1 || s.Value("figway_broker_connected") != 1 || s.Value("figway_broker_reconnects_total") < 1 {
		t.Errorf("after the restart figway_ready, figway_broker_connected, figway_broker_reconnects_total = %v, %v, %v; want 1, 1, ≥1",
			s.Value("figway_ready"), s.Value("figway_broker_connected"), s.Value("figway_broker_reconnects_total"))
	}
}

// TestReflectionFollowsReload adds a descriptor set to the routes file of
// a running figway: once the reload is in, reflection lists its services.
func TestReflectionFollowsReload(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	a := figway.NewAddrs(t)
	path := figway.WriteRoutes(t, "", a, url, nil)
	figway.Serve(t, path, a, true)
	conn := figway.Dial(t, a.GRPC)
	list := func() []string { return figway.ListServices(t, conn) }
	hasTestAPI := func() bool {
		return slices.ContainsFunc(list(), func(n string) bool { return strings.HasPrefix(n, "figway.testapi.v1.") })
	}
	if hasTestAPI() {
		t.Fatal("reflection lists figway.testapi.v1 before its descriptors were added")
	}
	b, _ := os.ReadFile(path)
	extra, _ := filepath.Abs("../../adapters/httpin/testdata/testapi.binpb")
	os.WriteFile(path, []byte(strings.Replace(string(b), `.binpb"]`, `.binpb", "`+extra+`"]`, 1)), 0o600)
	took := poll.Until(t, 3*time.Second, "reflection listing figway.testapi.v1 after the reload", hasTestAPI)
	t.Logf("reflection served the new descriptors %v after the write: %v", took.Round(time.Millisecond), list())
}
