package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/rawecho"
	"github.com/figway/figway/worker"
)

// The service side of the broker scenarios runs as a process of its own,
// as a deployed worker does, so that its CPU per call is a column of its
// own (cpu:worker): the SDK workers of figway-grpc, the raw echo responder
// of amqp-raw and the raw responder with manual acks of amqp-raw-ack. Only
// one of them has work in any scenario; the others wait on their queues.
const (
	serviceEnv = "FIGWAY_BENCH_SERVICE" // "<http addr> <amqp url> <channels> <stream messages>": be the service process

	sdkQueue    = "bench.figway"   // the SDK workers' (figway-grpc, figway-rest, figway-grpc-traced)
	rawQueue    = "bench.echo"     // the auto-ack responder's (amqp-raw, amqp-wire, amqp-tutorial, figway-rawecho, bare-bridge)
	ackQueue    = "bench.echo-ack" // the manual-ack responder's (amqp-raw-ack, figway-rawecho-ack)
	streamQueue = "bench.stream"   // the SDK stream workers' (figway-stream, figway-stream-rest)
)

// service is the service process, seen from the bench.
type service struct {
	addr string // its HTTP address: GET /stats
	pid  int
	stop func()
}

// startService runs the service process against the broker at url, with
// as many SDK workers, and channels of each responder, as channels. It
// returns once every consumer consumes. Its stream workers answer
// WatchOrder with messages events.
func startService(url string, channels, messages int) (*service, error) {
	addr := freeAddr()
	pid, stop, err := startSelf(serviceEnv, fmt.Sprintf("%s %s %d %d", addr, url, channels, messages), addr)
	if err != nil {
		return nil, err
	}
	return &service{addr: addr, pid: pid, stop: stop}, nil
}

// stats returns the SDK workers' counters, summed.
func (s *service) stats() worker.Stats {
	var st worker.Stats
	resp, err := http.Get("http://" + s.addr + "/stats")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: service stats:", err)
		return st
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		fmt.Fprintln(os.Stderr, "bench: service stats:", err)
	}
	return st
}

// exitServingService is the service process: it starts the responders
// and the SDK workers, then serves their stats (and pprof's profiles) on
// addr — listening says they consume — until killed.
func exitServingService(spec string) {
	var addr, url string
	var channels, messages int
	_, err := fmt.Sscan(spec, &addr, &url, &channels, &messages)
	if err == nil {
		err = serveService(addr, url, channels, messages)
	}
	fmt.Fprintln(os.Stderr, "bench: service:", err)
	os.Exit(1)
}

func serveService(addr, url string, channels, messages int) error {
	if _, err := rawecho.Start(url, rawQueue, channels, false); err != nil {
		return err
	}
	if _, err := rawecho.Start(url, ackQueue, channels, true); err != nil {
		return err
	}
	stats, err := startEchoWorkers(url, channels)
	if err != nil {
		return err
	}
	if err := startStreamWorkers(url, channels, messages); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode(stats()) })
	mux.HandleFunc("/debug/pprof/", pprof.Index) // make bench -profile
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	return http.Serve(lis, mux)
}

// startEchoWorkers runs n SDK workers echoing GetOrder on sdkQueue, as
// many as the responders have channels: a worker holds one channel, and
// services scale out by running more. It returns once they all consume,
// with their counters' sum.
func startEchoWorkers(url string, n int) (stats func() worker.Stats, err error) {
	log := slog.New(slog.DiscardHandler)
	var echoes []*worker.Worker
	for range n {
		// The queue as figway's topology declares it (routesTmpl): the
		// workers start first.
		echo := worker.New(worker.Config{URL: url, Queue: sdkQueue, Declare: &worker.Queue{}, Concurrency: 64, Prefetch: 256, Logger: log})
		worker.Handle(echo, "orders.v1.OrderService/GetOrder", func(_ context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
			return &ordersv1.Order{OrderId: req.GetOrderId()}, nil
		})
		echoes = append(echoes, echo)
	}
	stats = func() worker.Stats {
		var sum worker.Stats
		for _, e := range echoes {
			s := e.Stats()
			sum.Replied += s.Replied
			sum.Acks += s.Acks
		}
		return sum
	}
	var wg sync.WaitGroup // never waited: the process ends by being killed
	for _, w := range echoes {
		wg.Go(func() { w.Run(context.Background()) })
	}
	return stats, waitConsuming(echoes)
}

// waitConsuming waits until every worker of ws consumes: figway fails an
// rpc call at once while its queue has no consumer (docs/errors.md).
func waitConsuming(ws []*worker.Worker) error {
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		all := true
		for _, w := range ws {
			all = all && w.Stats().Connects > 0
		}
		if all {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the bench's workers did not consume within 20s")
		}
	}
}

// startStreamWorkers runs n SDK workers answering WatchOrder on
// streamQueue with messages events, each carrying the request's order id
// and the time it was sent (the caller's per-message latency). It
// returns once they all consume.
func startStreamWorkers(url string, n, messages int) error {
	log := slog.New(slog.DiscardHandler)
	var ws []*worker.Worker
	for range n {
		w := worker.New(worker.Config{URL: url, Queue: streamQueue, Declare: &worker.Queue{}, Concurrency: 64, Prefetch: 64, Logger: log})
		worker.HandleStream(w, ordersv1.OrderService_WatchOrder_FullMethodName, func(_ context.Context, req *ordersv1.WatchOrderRequest, send func(*ordersv1.OrderEvent) error) error {
			return sendEvents(req.GetOrderId(), messages, send)
		})
		ws = append(ws, w)
	}
	var wg sync.WaitGroup // never waited: the process ends by being killed
	for _, w := range ws {
		wg.Go(func() { w.Run(context.Background()) })
	}
	return waitConsuming(ws)
}
