package stream

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

// workerEnv, set to a broker URL, makes the test binary a worker process
// serving watch on it (startWorkerProcess) instead of running the tests.
const workerEnv = "FIGWAY_TEST_STREAM_WORKER"

func TestMain(m *testing.M) {
	if url := os.Getenv(workerEnv); url != "" {
		os.Exit(serveWorker(url))
	}
	rabbitmq.Main(m)
}

// routes is the routes file of these tests: WatchOrder to the broker over
// gRPC and REST, with a buffer of 1 MiB per stream. Placeholders: GRPC,
// HTTP, ADMIN, DESC, BROKER, IDLE (the route's stream.idle).
const routes = `
server: {grpc: "GRPC", http: "HTTP", admin: "ADMIN", shutdown_grace: 3s}
descriptors: ["DESC"]
broker: {url: "BROKER"}
routes:
  - method: orders.v1.OrderService/WatchOrder
    exchange: orders
    routing_key: orders.watch
    http: {get: "/v1/orders/{order_id}:watch"}
    timeout: 2m
    stream: {idle: IDLE, max_bytes: 1048576}
topology:
  exchanges: [{name: orders, type: topic}]
  queues: [{name: orders.requests, bind: {exchange: orders, key: "orders.#"}}]
`

// serveFigway runs `figway serve` on routes against url until the test
// ends, with the given idle bound.
func serveFigway(t *testing.T, url string, idle time.Duration) (figway.Addrs, *figway.Proc) {
	t.Helper()
	a := figway.NewAddrs(t)
	file := strings.NewReplacer("GRPC", a.GRPC, "HTTP", a.HTTP, "ADMIN", a.Admin, "DESC", figway.Descriptors, "BROKER", url,
		"IDLE", idle.String()).Replace(routes)
	path := filepath.Join(t.TempDir(), "figway.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	return a, figway.Start(t, path, a)
}

// bigBody is the size of each event of a "big" stream.
const bigBody = 64 << 10

// sent counts the events the in-process workers' watch handlers sent, and
// ended the handlers that returned; the slow-reader test reads them.
var sent, ended atomic.Int64

// watch is the WatchOrder of the tests' workers, by order id:
//   - "n-N": N events numbered 0 to N-1 in their order_id, then the end;
//   - "forever": an event every 10ms until the stream is cancelled;
//   - "big": events of 64 KiB, as fast as it can send, until cancelled.
func watch(ctx context.Context, req *ordersv1.WatchOrderRequest, send func(*ordersv1.OrderEvent) error) error {
	defer ended.Add(1)
	id := req.GetOrderId()
	if n, ok := strings.CutPrefix(id, "n-"); ok {
		count, err := strconv.Atoi(n)
		if err != nil {
			return err
		}
		for i := range count {
			if err := send(&ordersv1.OrderEvent{OrderId: strconv.Itoa(i), Status: ordersv1.OrderStatus_ORDER_STATUS_PAID}); err != nil {
				return err
			}
			sent.Add(1)
		}
		return nil
	}
	body := ""
	pause := 10 * time.Millisecond
	if id == "big" {
		body, pause = strings.Repeat("x", bigBody), 0
	}
	for i := 0; ; i++ {
		if err := send(&ordersv1.OrderEvent{OrderId: fmt.Sprint(i, body)}); err != nil {
			return err
		}
		sent.Add(1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}

// newWorker returns a worker of watch on url, not yet running.
func newWorker(url string, log *slog.Logger) *worker.Worker {
	w := worker.New(worker.Config{URL: url, Queue: "orders.requests", Concurrency: 64, Logger: log})
	worker.HandleStream(w, ordersv1.OrderService_WatchOrder_FullMethodName, watch)
	return w
}

// startWorker runs a worker of watch in the test's process until the
// test ends.
func startWorker(t *testing.T, url string) {
	t.Helper()
	w := newWorker(url, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	poll.Until(t, 30*time.Second, "the worker consumes its queue", func() bool { return w.Stats().Connects > 0 })
}

// startWorkerProcess runs a worker of watch as a process of its own (this
// test binary, with workerEnv set), which the test may kill.
func startWorkerProcess(t *testing.T, url string) *proc.Process {
	t.Helper()
	t.Setenv(workerEnv, url)
	p := proc.Start(t, "worker", os.Args[0], "-test.run=^$")
	poll.Until(t, 30*time.Second, "the worker process consumes its queue", func() bool {
		return strings.Contains(p.Log.String(), "consuming")
	})
	return p
}

// serveWorker is the worker process: it serves watch on url until it is
// signalled, and writes "consuming" to its standard error once it does.
func serveWorker(url string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	w := newWorker(url, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for w.Stats().Connects == 0 {
		select {
		case err := <-done:
			fmt.Fprintln(os.Stderr, "worker:", err)
			return 1
		case <-time.After(10 * time.Millisecond):
		}
	}
	fmt.Fprintln(os.Stderr, "consuming")
	if err := <-done; err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	return 0
}
