package grpcin_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

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
	srv := grpcin.New(gw, grpcin.Options{Logger: log, Legacy: lp.Proxy})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, lis, time.Second) }()
	defer func() { cancel(); <-done }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	o, err := ordersv1.NewOrderServiceClient(conn).GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
	if err != nil || o.GetNote() != "legacy" {
		t.Errorf("GetOrder = %v, %v; want legacy's answer", o, err)
	}
}
