package stream

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
)

// slowStreams is how many slow callers each test of this file runs at once.
const slowStreams = 8

// TestSlowReaders opens streams whose worker sends 64 KiB events as fast
// as it can to callers that read one event every 50ms. figway holds what
// a caller has not read up to the route's stream.max_bytes (1 MiB); past
// it the stream fails RESOURCE_EXHAUSTED.
//
//   - The Go SDK's worker is told to stop at the overflow, and stops.
//   - A worker that ignores cancels (docs/wire-protocol.md allows it)
//     sends 96 MiB in all; figway drops what no caller can take, and its
//     memory stays bounded all along, far under what the worker sent.
func TestSlowReaders(t *testing.T) {
	node := rabbitmq.ForTest(t)
	t.Run("worker that stops", func(t *testing.T) {
		url := node.NewVHost(t)
		a, fw := serveFigway(t, url, 30*time.Second)
		startWorker(t, url)
		orders := slowClient(t, a.GRPC)
		warmUp(t, orders)
		sent0, ended0 := sent.Load(), ended.Load()
		rss := sampleRSS(t, fw.Cmd.Process.Pid)
		reads, took := slowCallers(t, orders)
		handlers := poll.Until(t, 30*time.Second, "every worker handler returned", func() bool { return ended.Load()-ended0 == slowStreams })
		quiet := sent.Load()
		time.Sleep(200 * time.Millisecond)
		if n := sent.Load() - quiet; n != 0 {
			t.Errorf("the worker sent %d events after its handlers returned", n)
		}
		base, peak := rss()
		workerSent := sent.Load() - sent0
		t.Logf("%d slow readers read %d events of %d KiB, the worker sent %d (%d MiB); all failed RESOURCE_EXHAUSTED within %v, handlers done %v later; figway RSS %d MiB before, peak %d MiB",
			slowStreams, reads, bigBody>>10, workerSent, workerSent*bigBody>>20, took.Round(time.Millisecond), handlers.Round(time.Millisecond), base>>10, peak>>10)
		checkGrowth(t, base, peak)
	})
	t.Run("worker that ignores cancels", func(t *testing.T) {
		const each = 192 // 64 KiB events per stream: 96 MiB in all
		url := node.NewVHost(t)
		a, fw := serveFigway(t, url, 30*time.Second)
		orders := slowClient(t, a.GRPC)
		published := deafWorker(t, url, each)
		rss := sampleRSS(t, fw.Cmd.Process.Pid)
		reads, took := slowCallers(t, orders)
		poll.Until(t, 2*time.Minute, "the deaf worker sent every stream", func() bool { return published() == slowStreams })
		base, peak := rss()
		t.Logf("%d slow readers read %d events of %d KiB and failed RESOURCE_EXHAUSTED within %v, the worker sent %d MiB regardless; figway RSS %d MiB before, peak %d MiB",
			slowStreams, reads, bigBody>>10, took.Round(time.Millisecond), slowStreams*each*bigBody>>20, base>>10, peak>>10)
		checkGrowth(t, base, peak)
	})
}

// checkGrowth fails t if figway's RSS grew too much for slowStreams
// streams bounded to 1 MiB each: 8 MiB held at most, plus what gRPC
// buffers for each caller and the garbage of the messages passed on or
// dropped before the collector runs (Go lets the heap grow to twice what
// is live, and RSS keeps what the heap once had): 20–30 MiB measured. A
// figway that held what the worker that ignores cancels sends would grow
// by its 96 MiB; 48 MiB leaves room for a loaded machine's slower
// collections.
func checkGrowth(t *testing.T, base, peak int) {
	t.Helper()
	if growth := (peak - base) << 10; growth > 48<<20 {
		t.Errorf("figway's RSS grew by %d MiB with %d slow streams bounded to 1 MiB each; want under 48 MiB", growth>>20, slowStreams)
	}
}

// slowCallers runs slowStreams callers of the "big" stream that each read
// an event every 50ms, until their stream fails, which must be with
// RESOURCE_EXHAUSTED. It returns the events they read in all, and how long
// until the last failed.
//
// Their gRPC windows are fixed at 64 KiB: grpc-go's default grows a
// reading client's window up to 16 MiB (BDP estimation), so that a
// caller would hold most of what it has not read itself, and take minutes
// to read it at this pace.
func slowCallers(t *testing.T, orders ordersv1.OrderServiceClient) (int, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		reads int
	)
	for range slowStreams {
		wg.Go(func() {
			s, err := orders.WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: "big"})
			read := 0
			for err == nil {
				if _, err = s.Recv(); err == nil {
					read++
					time.Sleep(50 * time.Millisecond)
				}
			}
			if status.Code(err) != codes.ResourceExhausted {
				t.Errorf("a slow reader's stream ended with %v after %d events; want RESOURCE_EXHAUSTED", err, read)
			}
			mu.Lock()
			reads += read
			mu.Unlock()
		})
	}
	wg.Wait()
	return reads, time.Since(start)
}

// slowClient is a client of figway's gRPC listener at addr whose windows
// do not grow.
func slowClient(t *testing.T, addr string) ordersv1.OrderServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ordersv1.NewOrderServiceClient(conn)
}

// sampleRSS samples figway's RSS (KiB) every 20ms from now on; the
// function it returns stops and returns the first sample and the peak.
func sampleRSS(t *testing.T, pid int) func() (base, peak int) {
	base := figway.RSS(t, pid)
	peak := base
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			peak = max(peak, figway.RSS(t, pid))
		}
	}()
	var once sync.Once
	stopped := func() (int, int) {
		once.Do(func() { close(stop); <-done })
		return base, peak
	}
	t.Cleanup(func() { stopped() })
	return stopped
}

// deafWorker serves WatchOrder on url as a worker that ignores cancels:
// for each request it publishes each events of 64 KiB and the end, as
// fast as the broker takes them, whatever becomes of the caller. The
// function it returns counts the streams it has sent whole.
func deafWorker(t *testing.T, url string, each int) func() int {
	t.Helper()
	var (
		mu   sync.Mutex
		done int
		wg   sync.WaitGroup
	)
	t.Cleanup(wg.Wait) // after the connection is closed: publishes fail
	conn := rabbitmq.Dial(t, url)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume("orders.requests", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := proto.Marshal(&ordersv1.OrderEvent{OrderId: strings.Repeat("x", bigBody)})
	if err != nil {
		t.Fatal(err)
	}
	stream := func(d amqp091.Delivery) {
		pub, err := conn.Channel()
		if err != nil {
			return // the connection is closing
		}
		defer pub.Close()
		for i := range each + 1 {
			p := amqp091.Publishing{CorrelationId: d.CorrelationId, ContentType: d.ContentType,
				Headers: wire.SetStreamPart(amqp091.Table{}, int64(i), i == each)}
			if i < each {
				p.Body = body
			}
			if err := pub.Publish("", d.ReplyTo, false, false, p); err != nil {
				return
			}
		}
		mu.Lock()
		done++
		mu.Unlock()
	}
	wg.Go(func() {
		for d := range deliveries { // until the connection closes
			wg.Go(func() { stream(d) })
		}
	})
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return done
	}
}
