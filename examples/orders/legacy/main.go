// Command legacy is the legacy orders service of the demo: the monolith
// figway stands in front of. It serves orders.v1.OrderService over gRPC
// and part of it over REST/JSON, from the same in-memory store the migrated
// worker uses, so figway can shadow calls and compare the two answers.
//
//	go run ./examples/orders/legacy -grpc 127.0.0.1:50051 -http 127.0.0.1:8000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/figway/figway/examples/orders/store"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], log); err != nil {
		log.Error("legacy service failed", "error", err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	flags := flag.NewFlagSet("legacy", flag.ContinueOnError)
	grpcAddr := flags.String("grpc", "127.0.0.1:50051", "gRPC listen `address`")
	httpAddr := flags.String("http", "127.0.0.1:8000", "REST listen `address`")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", flags.Args())
	}
	s := &service{store: store.New(log, nil)}

	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(servedBy))
	ordersv1.RegisterOrderServiceServer(gs, s)
	glis, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: s.rest(), ReadHeaderTimeout: 5 * time.Second}
	hlis, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		glis.Close()
		return err
	}
	log.Info("legacy orders service", "grpc", glis.Addr().String(), "http", hlis.Addr().String())
	errc := make(chan error, 2)
	go func() { errc <- gs.Serve(glis) }()
	go func() { errc <- hs.Serve(hlis) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		gs.Stop()
		hs.Close()
		return err
	}
	gs.GracefulStop()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// service is the legacy gRPC service: the store's unary methods, and
// WatchOrder.
type service struct {
	ordersv1.UnimplementedOrderServiceServer
	store *store.Store
}

func (s *service) GetOrder(ctx context.Context, r *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
	return s.store.GetOrder(ctx, r)
}

func (s *service) ListOrders(ctx context.Context, r *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
	return s.store.ListOrders(ctx, r)
}

func (s *service) PlaceOrder(ctx context.Context, r *ordersv1.PlaceOrderRequest) (*ordersv1.Order, error) {
	return s.store.PlaceOrder(ctx, r)
}

func (s *service) CancelOrder(ctx context.Context, r *ordersv1.CancelOrderRequest) (*ordersv1.Order, error) {
	return s.store.CancelOrder(ctx, r)
}

// WatchOrder sends the order's status now and then every second, ten times.
func (s *service) WatchOrder(req *ordersv1.WatchOrderRequest, stream grpc.ServerStreamingServer[ordersv1.OrderEvent]) error {
	return s.store.WatchOrder(stream.Context(), req, stream.Send, time.Second, 10)
}

// servedBy marks every gRPC answer as the legacy service's, so the demo
// shows which side answered.
func servedBy(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	grpc.SetHeader(ctx, metadata.Pairs("x-served-by", "legacy"))
	return h(ctx, req)
}
