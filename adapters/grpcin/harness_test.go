package grpcin_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/figway/figway/adapters/amqp"
	"github.com/figway/figway/adapters/grpcin"
	"github.com/figway/figway/adapters/legacy"
	"github.com/figway/figway/gateway"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/core"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

// routesTmpl is the routes file of the tests; BROKER is replaced with the
// test's vhost URL.
const routesTmpl = `
descriptors: [DESCRIPTORS]
server: {max_request_bytes: 4096}
broker: {url: "BROKER", channels: 2}
defaults:
  timeout: 5s
  forward_headers: [x-tenant-id]
routes:
  - {method: orders.v1.OrderService/GetOrder, exchange: orders, routing_key: orders.get}
  - {method: orders.v1.OrderService/PlaceOrder, exchange: orders, routing_key: orders.placed, pattern: event}
  - {method: orders.v1.OrderService/CancelOrder, exchange: orders, routing_key: orders.cancel, max_in_flight: 2}
topology:
  exchanges: [{name: orders, type: topic}]
  queues: [{name: orders.requests, bind: {exchange: orders, key: "orders.#"}}]
`

// bridge is figway in-process: the gateway, its AMQP client and the gRPC
// ingress, with a typed client of the example API.
type bridge struct {
	gw     *gateway.Gateway
	url    string
	amqp   *amqp.Client
	client ordersv1.OrderServiceClient
	conn   *grpc.ClientConn
}

// startBridge starts figway in-process with routes on a fresh vhost of the
// shared node; lp, if given, is the legacy upstream.
func startBridge(t *testing.T, routes string, lp ...*legacy.GRPC) *bridge {
	t.Helper()
	return startBridgeAt(t, rabbitmq.ForTest(t).NewVHost(t), routes, lp...)
}

// startBridgeAt is startBridge on the broker at url.
func startBridgeAt(t *testing.T, url, routes string, lp ...*legacy.GRPC) *bridge {
	t.Helper()
	var port gateway.Legacy
	opts := grpcin.Options{Logger: slog.New(slog.DiscardHandler)}
	if len(lp) > 0 {
		port, opts.Legacy = lp[0], lp[0].Proxy
	}
	running := core.Start(t, routes, url, "../../examples/orders/orders.binpb", port)
	opts.MaxRequestBytes = running.Config.Server.MaxRequestBytes
	opts.Register = func(s *grpc.Server) { grpcin.RegisterReflection(s, running.Config.Files) }
	conn := serve(t, grpcin.New(running.Gateway, opts))
	return &bridge{gw: running.Gateway, url: url, amqp: running.AMQP, client: ordersv1.NewOrderServiceClient(conn), conn: conn}
}

// serve runs srv on a loopback listener until the test ends, and returns
// a client connection to it, closed when the test ends.
func serve(t *testing.T, srv *grpcin.Server) *grpc.ClientConn {
	t.Helper()
	addr := core.Serve(t, func(ctx context.Context, lis net.Listener) error { return srv.Serve(ctx, lis, time.Second) })
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// startWorker runs a worker on the routes' queue until the test ends;
// register adds its handlers.
func startWorker(t *testing.T, url string, register func(w *worker.Worker)) {
	t.Helper()
	w := worker.New(worker.Config{
		URL: url, Queue: "orders.requests", Concurrency: 8,
		Logger: slog.New(slog.DiscardHandler),
	})
	register(w)
	fault.RunWorker(t, w)
	fault.WaitConsuming(t, w)
}
