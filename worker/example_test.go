package worker_test

import (
	"context"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/worker"
)

// A worker that serves one method of a greeter service until SIGINT or
// SIGTERM. figway routes greeter.v1.Greeter/Hello to exchange "greeter"
// with routing key "greeter.hello"; the worker declares its queue and binds
// it there.
func Example() {
	w := worker.New(worker.Config{
		URL:   "amqp://guest:guest@127.0.0.1:5672/",
		Queue: "greeter.requests",
		Declare: &worker.Queue{
			Type:     worker.Quorum,
			Bindings: []worker.Binding{{Exchange: "greeter", Key: "greeter.#"}},
		},
		Concurrency: 8,
	})
	worker.Handle(w, "greeter.v1.Greeter/Hello", func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		name := strings.TrimSpace(req.GetValue())
		if name == "" {
			return nil, status.Error(codes.InvalidArgument, "name is required")
		}
		if tenant := worker.Metadata(ctx)["x-tenant-id"]; len(tenant) > 0 {
			name += " of " + tenant[0]
		}
		return wrapperspb.String("Hello, " + name), nil
	})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := w.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
