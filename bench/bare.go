package main

import (
	"context"
	"fmt"
	"os"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
)

// bareBridge is the bare-bridge scenario: the least a gateway process can
// do between a gRPC caller and a RabbitMQ worker — a plain grpc-go server
// whose handler sends the request as amqp-wire does (figway's messages:
// headers, expiration, mandatory, confirms; direct reply-to over a few
// channels) and answers with the reply, nothing else: no routes, breakers,
// bulkheads, metrics, logs or trace spans. Its CPU per call, in the
// gateway column, is the floor figway's own is measured against in the
// same run (docs/performance.md).
type bareBridge struct {
	ordersv1.UnimplementedOrderServiceServer
	amqp *rawClient
}

func (b *bareBridge) GetOrder(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
	body, err := proto.Marshal(req)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	reply, err := b.amqp.roundTrip(ctx, "bench.echo", body)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	o := new(ordersv1.Order) // the echo of GetOrderRequest{order_id} reads as Order{order_id}
	if err := proto.Unmarshal(reply, o); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return o, nil
}

// bareEnv, set to "addr url channels", makes the bench's binary (or its
// test binary) the bare bridge and nothing else.
const bareEnv = "FIGWAY_BENCH_BARE"

// exitServingBare serves the bare bridge until killed.
func exitServingBare(spec string) {
	var addr, url string
	var channels int
	_, err := fmt.Sscan(spec, &addr, &url, &channels)
	if err == nil {
		err = func() error {
			c, err := newRawClient(url, channels, true)
			if err != nil {
				return err
			}
			return serveOrders(addr, &bareBridge{amqp: c})
		}()
	}
	fmt.Fprintln(os.Stderr, "bench: bare bridge:", err)
	os.Exit(1)
}

// startBareBridge runs the bare bridge as a process of its own, as figway
// runs, against the echo responder on the broker at url.
func startBareBridge(url string, channels int) (addr string, pid int, stop func(), err error) {
	addr = freeAddr()
	pid, stop, err = startSelf(bareEnv, fmt.Sprintf("%s %s %d", addr, url, channels), addr)
	return addr, pid, stop, err
}
