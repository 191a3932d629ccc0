package grpcin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/worker"
)

const watchOrder = "orders.v1.OrderService/WatchOrder"

// streamRoutes routes WatchOrder to the broker, with a canary weight of
// 100 (every call to the broker unless pinned) and pin_by.
var streamRoutes = strings.Replace(routesTmpl, "routes:\n", `legacy: {grpc: 127.0.0.1:1}
routes:
  - {method: orders.v1.OrderService/WatchOrder, exchange: orders, routing_key: orders.watch, weight: 100, pin_by: x-pin}
`, 1)

// watchN is a streaming handler that sends the number of events the
// order id asks for ("o-5": five), each numbered in its OrderId, with a
// header and a trailer; "fail-N" ends with NOT_FOUND after N events.
func watchN(ctx context.Context, req *ordersv1.WatchOrderRequest, send func(*ordersv1.OrderEvent) error) error {
	var n int
	failing := strings.HasPrefix(req.GetOrderId(), "fail-")
	fmt.Sscanf(strings.TrimPrefix(strings.TrimPrefix(req.GetOrderId(), "fail-"), "o-"), "%d", &n)
	worker.SetHeader(ctx, metadata.Pairs("x-watch", req.GetOrderId()))
	for i := range n {
		if err := send(&ordersv1.OrderEvent{OrderId: fmt.Sprint(i)}); err != nil {
			return err
		}
	}
	worker.SetTrailer(ctx, metadata.Pairs("x-sent", fmt.Sprint(n)))
	if failing {
		return status.Error(codes.NotFound, "no such order")
	}
	return nil
}

func TestStreamThroughTheBroker(t *testing.T) {
	b := startBridge(t, streamRoutes, startLegacy(t))
	startWorker(t, b.url, func(w *worker.Worker) { worker.HandleStream(w, watchOrder, watchN) })
	tests := []struct {
		name, id, pin string
		want          string
		code          codes.Code
		header        string
	}{
		{"OK", "o-5", "", "[0 1 2 3 4]", codes.OK, "o-5"},
		{"empty", "o-0", "", "[]", codes.OK, "o-0"},
		{"worker error", "fail-2", "", "[0 1]", codes.NotFound, "fail-2"},
		{"pinned to legacy", "o-5", "legacy", "[o-5 o-5 o-5]", codes.OK, ""},
		{"pinned to the broker", "o-3", "broker", "[0 1 2]", codes.OK, "o-3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if tt.pin != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "x-pin", tt.pin)
			}
			s, err := b.client.WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: tt.id})
			if err != nil {
				t.Fatalf("WatchOrder: %v", err)
			}
			got, err := figway.RecvIDs(s)
			if fmt.Sprint(got) != tt.want || status.Code(err) != tt.code {
				t.Errorf("WatchOrder(%s) = %v, %v; want %s, %v", tt.id, got, err, tt.want, tt.code)
			}
			if h, _ := s.Header(); fmt.Sprint(h.Get("x-watch")) != fmt.Sprint(strings.Fields(tt.header)) {
				t.Errorf("header x-watch = %v; want %q", h.Get("x-watch"), tt.header)
			}
			if tt.pin != "legacy" && fmt.Sprint(s.Trailer().Get("x-sent")) != fmt.Sprint([]string{fmt.Sprint(len(strings.Fields(strings.Trim(tt.want, "[]"))))}) {
				t.Errorf("trailer x-sent = %v; want the number of events", s.Trailer().Get("x-sent"))
			}
		})
	}
}

// TestManyLongStreams runs 64 streams of 1,000 messages each at once: every
// one must arrive complete and in order.
func TestManyLongStreams(t *testing.T) {
	const streams, each = 64, 1000
	b := startBridge(t, strings.Replace(streamRoutes, "pin_by: x-pin}", "pin_by: x-pin, timeout: 2m}", 1), startLegacy(t))
	w := worker.New(worker.Config{URL: b.url, Queue: "orders.requests", Concurrency: streams, Logger: slog.New(slog.DiscardHandler)})
	worker.HandleStream(w, watchOrder, watchN)
	fault.RunWorker(t, w)
	fault.WaitConsuming(t, w)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for range streams {
		wg.Go(func() {
			s, err := b.client.WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: fmt.Sprint("o-", each)})
			if err != nil {
				errs <- err
				return
			}
			for i := 0; ; i++ {
				ev, err := s.Recv()
				if errors.Is(err, io.EOF) && i == each {
					return
				}
				if err != nil || ev.GetOrderId() != fmt.Sprint(i) {
					errs <- fmt.Errorf("message %d: %v, %v", i, ev.GetOrderId(), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	took := time.Since(start)
	t.Logf("%d streams × %d messages in %v: %.0f messages/s", streams, each, took, float64(streams*each)/took.Seconds())
}

// TestCancelReachesTheWorker cancels a unary call and a stream while their
// handlers run: each handler's context must end soon after, and the
// streaming handler stop sending.
func TestCancelReachesTheWorker(t *testing.T) {
	b := startBridge(t, streamRoutes, startLegacy(t))
	ended := make(chan time.Time, 2)
	started := make(chan struct{}, 2)
	var sentAfter sync.WaitGroup
	sends := 0
	startWorker(t, b.url, func(w *worker.Worker) {
		worker.Handle(w, "orders.v1.OrderService/GetOrder", func(ctx context.Context, _ *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
			started <- struct{}{}
			<-ctx.Done()
			ended <- time.Now()
			return nil, ctx.Err()
		})
		worker.HandleStream(w, watchOrder, func(ctx context.Context, _ *ordersv1.WatchOrderRequest, send func(*ordersv1.OrderEvent) error) error {
			sentAfter.Add(1)
			defer sentAfter.Done()
			for i := 0; ; i++ {
				if err := send(&ordersv1.OrderEvent{OrderId: fmt.Sprint(i)}); err != nil {
					ended <- time.Now()
					sends = i
					return err
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	})

	t.Run("unary", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := b.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
			errc <- err
		}()
		<-started
		at := time.Now()
		cancel()
		if err := <-errc; status.Code(err) != codes.Canceled {
			t.Errorf("GetOrder = %v; want Canceled", err)
		}
		checkEnded(t, ended, at)
	})
	t.Run("stream", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := b.client.WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: "forever"})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := s.Recv(); err != nil {
				t.Fatalf("Recv: %v", err)
			}
		}
		at := time.Now()
		cancel()
		checkEnded(t, ended, at)
		sentAfter.Wait() // the handler returned: it sends no more
		t.Logf("the handler sent %d messages", sends)
	})
}

// checkEnded waits for a handler's context to end after the caller
// cancelled at at. The SDK ends it within 100 ms of the cancel on an idle
// machine (docs/wire-protocol.md, "Cancellation"); the bound here holds
// on a loaded two-core box under -race.
func checkEnded(t *testing.T, ended <-chan time.Time, at time.Time) {
	t.Helper()
	select {
	case e := <-ended:
		took := e.Sub(at)
		t.Logf("the handler's context ended %v after the caller cancelled", took)
		if took > time.Second {
			t.Errorf("the handler's context ended %v after the cancel; want well within 1s", took)
		}
	case <-time.After(4 * time.Second): // the route's timeout is 5s
		t.Fatal("the handler's context did not end within 4s of the cancel")
	}
}
