// Command worker serves orders.v1.OrderService from RabbitMQ: the migrated
// half of the orders demo. figway publishes the calls its routes migrate to
// exchange "orders"; this worker consumes them from one queue bound there,
// answers from an in-memory store, and replies.
//
//	go run ./examples/orders/worker -amqp amqp://guest:guest@127.0.0.1:5672/
//
// Against a cluster, -amqp lists every node's URL, comma-separated, and
// -queue-type quorum declares the queue as figway's topology does there.
//
// It is what a team writes to migrate a service: one handler per method,
// errors as gRPC statuses, everything else left to package worker.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/figway/figway/examples/orders/store"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/worker"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], log); err != nil {
		log.Error("worker failed", "error", err.Error())
		os.Exit(1)
	}
}

// run serves until ctx is cancelled (SIGINT or SIGTERM), then lets the
// running calls finish.
func run(ctx context.Context, args []string, log *slog.Logger) error {
	flags := flag.NewFlagSet("worker", flag.ContinueOnError)
	amqpURL := flags.String("amqp", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ `URL`s, comma-separated (a cluster's nodes, tried in turn)")
	queue := flags.String("queue", "orders.requests", "`name` of the queue to consume")
	exportPause := flags.Duration("export-pause", 3*time.Second, "how long ExportOrders takes, as a real export would (`duration`)")
	queueType := flags.String("queue-type", "classic", "`type` of the queue: classic or quorum")
	watchEvery := flags.Duration("watch-every", time.Second, "how often WatchOrder sends the order's status, ten times (`duration`)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", flags.Args())
	}

	w := worker.New(worker.Config{
		URLs:  strings.Split(*amqpURL, ","),
		Queue: *queue,
		// Declared at start and after every reconnect, as figway's
		// topology in figway.yaml declares it: both may come up first.
		Declare: &worker.Queue{
			Type:     worker.QueueType(*queueType),
			Bindings: []worker.Binding{{Exchange: "orders", Key: "orders.#"}},
		},
		Logger: log,
	})
	// The order PlaceOrder creates takes the call's event id: unique, and
	// kept when the broker redelivers the request.
	s := store.New(log, worker.EventID)
	worker.Handle(w, ordersv1.OrderService_GetOrder_FullMethodName, s.GetOrder)
	worker.Handle(w, ordersv1.OrderService_ListOrders_FullMethodName, s.ListOrders)
	worker.Handle(w, ordersv1.OrderService_PlaceOrder_FullMethodName, placeOrder(s))
	worker.Handle(w, ordersv1.OrderService_CancelOrder_FullMethodName, s.CancelOrder)
	worker.Handle(w, ordersv1.OrderService_ExportOrders_FullMethodName,
		func(ctx context.Context, req *ordersv1.ExportOrdersRequest) (*ordersv1.ExportOrdersResponse, error) {
			return s.ExportOrders(ctx, req, *exportPause)
		})
	// Server-streaming: each event is a message to figway as it is sent;
	// ctx ends when the caller goes away, and send fails then.
	worker.HandleStream(w, ordersv1.OrderService_WatchOrder_FullMethodName,
		func(ctx context.Context, req *ordersv1.WatchOrderRequest, send func(*ordersv1.OrderEvent) error) error {
			return s.WatchOrder(ctx, req, send, *watchEvery, 10)
		})

	log.Info("orders worker starting", "queue", *queue) // never log the URL: it holds the password
	return w.Run(ctx)
}

// placeOrder places an order and answers REST callers as the legacy
// service does: 201 Created, with the new order's Location (the route
// lists location in response_headers; gRPC callers get it as a response
// header).
func placeOrder(s *store.Store) func(context.Context, *ordersv1.PlaceOrderRequest) (*ordersv1.Order, error) {
	return func(ctx context.Context, req *ordersv1.PlaceOrderRequest) (*ordersv1.Order, error) {
		o, err := s.PlaceOrder(ctx, req)
		if err != nil {
			return nil, err
		}
		if err := worker.SetHTTPStatus(ctx, http.StatusCreated); err != nil {
			return nil, err
		}
		if err := worker.SetHeader(ctx, metadata.Pairs("location", "/v1/orders/"+o.GetOrderId())); err != nil {
			return nil, err
		}
		return o, nil
	}
}
