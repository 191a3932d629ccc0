package metrics_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/prom"
	"github.com/figway/figway/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func table(t *testing.T) *gateway.Table {
	t.Helper()
	desc, _ := filepath.Abs("../examples/orders/orders.binpb")
	cfg, err := config.Parse([]byte(`
descriptors: [`+desc+`]
broker: {url: "amqp://127.0.0.1:5672/"}
legacy: {grpc: "127.0.0.1:50051"}
routes:
  - {method: orders.v1.OrderService/GetOrder, routing_key: orders.get, max_in_flight: 7, weight: 60, fallback: legacy}
  - {method: orders.v1.OrderService/PlaceOrder, routing_key: orders.placed, pattern: event}
  - {method: orders.v1.OrderService/ListOrders, to: legacy, shadow: true, compare: true, routing_key: orders.list}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := cfg.Table(nil)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// TestExactCounts sends known traffic through a real gRPC server and an
// HTTP server wearing the hooks, scrapes /metrics over HTTP and checks
// every count.
func TestExactCounts(t *testing.T) {
	tb := table(t)
	m := metrics.New("v-test", metrics.Sources{
		Table: func() *gateway.Table { return tb },
		Broker: func() metrics.BrokerStats {
			return metrics.BrokerStats{Connected: true, Pending: 3, UnmatchedReplies: 4, Reconnects: 2}
		},
		Ready: func() bool { return true },
		Migration: func(method string) gateway.Migration {
			return gateway.Migration{CanaryBroker: 6, CanaryLegacy: 4, ShadowSent: 9, ShadowMismatched: 2, ShadowMatched: 7, FallingBack: true}
		},
		// Known for GetOrder only: the others' queues are not.
		Consumers: func(method string) (int, bool) { return 2, method == "orders.v1.OrderService/GetOrder" },
	})

	// gRPC: GetOrder answers OK when the order id is "ok", else UNAVAILABLE.
	srv := grpc.NewServer(
		grpc.ChainStreamInterceptor(m.StreamInterceptor(metrics.GRPCRoutes(func() *gateway.Table { return tb }))),
		grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
			method, _ := grpc.MethodFromServerStream(ss)
			if method != "/orders.v1.OrderService/GetOrder" {
				return status.Error(codes.Unimplemented, "no route")
			}
			var req ordersv1.GetOrderRequest
			if err := ss.RecvMsg(&req); err != nil {
				return err
			}
			if req.GetOrderId() != "ok" {
				return status.Error(codes.Unavailable, "broker down")
			}
			return ss.SendMsg(&ordersv1.Order{OrderId: "ok"})
		}),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	orders := ordersv1.NewOrderServiceClient(conn)
	for _, id := range []string{"ok", "ok", "ok", "x", "x"} {
		orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: id})
	}
	orders.CancelOrder(ctx, &ordersv1.CancelOrderRequest{}) // no route
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}

	// HTTP: the handler names the route of /v1/orders/*; any other path
	// stays unrouted.
	rest := httptest.NewServer(m.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/orders/1" {
			metrics.SetRoute(r.Context(), "/orders.v1.OrderService/GetOrder")
			w.Write([]byte("{}"))
			return
		}
		http.NotFound(w, r)
	})))
	defer rest.Close()
	for _, p := range []string{"/v1/orders/1", "/v1/orders/1", "/secret/admin?x=1"} {
		resp, err := http.Get(rest.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	m.Reloaded(true)
	m.Reloaded(false)
	m.Reloaded(false)
	m.ObserveConfirm(3*time.Millisecond, true)
	m.ObserveConfirm(time.Millisecond, false)

	admin := httptest.NewServer(m.Handler())
	defer admin.Close()
	s := prom.Get(t, admin.URL)

	const getOrder = "orders.v1.OrderService/GetOrder"
	const listOrders = "orders.v1.OrderService/ListOrders"
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"figway_requests_total", []string{"route", getOrder, "ingress", "grpc", "code", "OK"}, 3},
		{"figway_requests_total", []string{"route", getOrder, "ingress", "grpc", "code", "Unavailable"}, 2},
		{"figway_requests_total", []string{"route", "unrouted", "ingress", "grpc", "code", "Unimplemented"}, 1},
		{"figway_request_duration_seconds", []string{"route", getOrder, "ingress", "grpc"}, 5},
		{"figway_requests_total", []string{"route", getOrder, "ingress", "http", "code", "200"}, 2},
		{"figway_requests_total", []string{"route", "unrouted", "ingress", "http", "code", "404"}, 1},
		{"figway_request_duration_seconds", []string{"route", getOrder, "ingress", "http"}, 2},
		{"figway_requests_in_flight", []string{"route", getOrder}, 0},
		{"figway_route_max_in_flight", []string{"route", getOrder}, 7},
		{"figway_breaker_state", []string{"route", getOrder, "state", "closed"}, 1},
		{"figway_breaker_state", []string{"route", getOrder, "state", "open"}, 0},
		{"figway_breaker_state", []string{"route", getOrder, "state", "half_open"}, 0},
		{"figway_replies_unmatched_total", nil, 4},
		{"figway_replies_pending", nil, 3},
		{"figway_broker_reconnects_total", nil, 2},
		{"figway_broker_connected", nil, 1},
		{"figway_broker_blocked", nil, 0},
		{"figway_ready", nil, 1},
		{"figway_config_reloads_total", []string{"result", "ok"}, 1},
		{"figway_config_reloads_total", []string{"result", "failed"}, 2},
		{"figway_config_last_reload_successful", nil, 0},
		{"figway_publish_confirm_duration_seconds", []string{"result", "ack"}, 1},
		{"figway_publish_confirm_duration_seconds", []string{"result", "nack"}, 1},
		{"figway_build_info", []string{"version", "v-test"}, 1},
		{"figway_canary_calls_total", []string{"route", getOrder, "to", "broker"}, 6},
		{"figway_canary_calls_total", []string{"route", getOrder, "to", "legacy"}, 4},
		{"figway_shadow_copies_total", []string{"route", listOrders, "result", "sent"}, 9},
		{"figway_shadow_mismatches_total", []string{"route", listOrders}, 2},
		{"figway_shadow_matches_total", []string{"route", listOrders}, 7},
		{"figway_fallback_active", []string{"route", getOrder}, 1},
		{"figway_routes", nil, 3},
		{"figway_route_consumers", []string{"route", getOrder}, 2},
	} {
		if got := s.Value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v; want %v\n%s", c.name, c.labels, got, c.want, s.Series(c.name))
		}
	}
	// Only the series above: health checks are not counted, raw paths
	// never become labels.
	if n := len(s["figway_requests_total"].GetMetric()); n != 5 {
		t.Errorf("figway_requests_total has %d series; want 5\n%s", n, s.Series("figway_requests_total"))
	}
	// Strangler-fig series only for the routes that use the setting.
	for name, want := range map[string]int{"figway_canary_calls_total": 2, "figway_fallback_active": 1, "figway_shadow_copies_total": 3, "figway_shadow_mismatches_total": 1, "figway_route_consumers": 1} {
		if n := len(s[name].GetMetric()); n != want {
			t.Errorf("%s has %d series; want %d\n%s", name, n, want, s.Series(name))
		}
	}
	// docs/operations.md documents every series.
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range s {
		if strings.HasPrefix(name, "figway_") && !strings.Contains(string(doc), "| `"+name+"` |") {
			t.Errorf("docs/operations.md has no table row for %s", name)
		}
	}
	if s["go_goroutines"] == nil || s["process_cpu_seconds_total"] == nil {
		t.Error("the Go runtime and process collectors are missing")
	}
}
