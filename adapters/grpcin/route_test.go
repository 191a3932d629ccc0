package grpcin_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/figway/figway/adapters/grpcin"
	"github.com/figway/figway/gateway"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/core"
)

// TestNoGatewayRouteGoesToLegacy: a call the gateway does not take — here
// a shadow route whose gateway has no Legacy port, as after a reload race
// — goes to the legacy passthrough, as the REST ingress sends it, instead
// of answering UNIMPLEMENTED: the ingress asks gateway.Route once and
// follows its answer.
func TestNoGatewayRouteGoesToLegacy(t *testing.T) {
	lp := startLegacy(t)
	routes := strings.Replace(routesTmpl, "routes:\n", "legacy: {grpc: 127.0.0.1:1}\nroutes:\n", 1)
	routes = strings.Replace(routes, "{method: orders.v1.OrderService/GetOrder, exchange: orders, routing_key: orders.get}",
		"{method: orders.v1.OrderService/GetOrder, to: legacy, shadow: true, exchange: orders, routing_key: orders.get}", 1)
	cfg, _ := core.Load(t, routes, "amqp://127.0.0.1:1/", "../../examples/orders/orders.binpb")
	table, err := cfg.Table(nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	gw := gateway.New(gateway.Options{Table: table, Logger: log}) // no Legacy port
	conn := serve(t, grpcin.New(gw, grpcin.Options{Logger: log, Legacy: lp.Proxy}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o, err := ordersv1.NewOrderServiceClient(conn).GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
	if err != nil || o.GetNote() != "legacy" {
		t.Errorf("GetOrder = %v, %v; want legacy's answer", o, err)
	}
}
