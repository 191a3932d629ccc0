package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/internal/testing/rawecho"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
	"github.com/figway/figway/worker"
)

// BenchmarkRequest measures a request through the SDK on a real broker:
// published as figway publishes it (wire headers, deadline, trace
// context), run by an echo handler, its reply read back — one at a time
// (c=1) and 64 at once (c=64). raw-ack is the same calls answered by
// rawecho's responder, which acks as cheaply as RabbitMQ allows: the floor
// of an at-least-once worker. allocs/op counts the whole process, caller
// and amqp091-go included, and so does cpu-µs/op (the process's CPU time
// per request, which a shared machine disturbs far less than ns/op):
// sdk's less raw-ack's is the SDK's own.
//
//	go test -run '^$' -bench Request -benchtime 2s ./test/worker/
func BenchmarkRequest(b *testing.B) {
	url := rabbitmq.ForTest(b).NewVHost(b)
	const sdkQueue, rawQueue = "bench.sdk", "bench.raw-ack"
	w := worker.New(worker.Config{URL: url, Queue: sdkQueue, Declare: &worker.Queue{}, Concurrency: 64, Prefetch: 256, Logger: slog.New(slog.DiscardHandler)})
	worker.Handle(w, echoMethod, func(_ context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return req, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	stopRaw, err := rawecho.Start(url, rawQueue, 1, true)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stopRaw)
	c := newBenchCaller(b, url)
	body, err := proto.Marshal(wrapperspb.String(strings.Repeat("x", 256)))
	if err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(waitFor); w.Stats().Connects == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the worker does not consume")
		}
	}
	for _, side := range []struct{ name, queue string }{{"sdk", sdkQueue}, {"raw-ack", rawQueue}} {
		if err := c.call(side.queue, body); err != nil { // warm up
			b.Fatalf("%s: %v", side.name, err)
		}
		b.Run(side.name+"/c=1", func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b, processCPU())
			if side.name == "sdk" {
				defer reportAcks(b, w, w.Stats())
			}
			for b.Loop() {
				if err := c.call(side.queue, body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(side.name+"/c=64", func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b, processCPU())
			if side.name == "sdk" {
				defer reportAcks(b, w, w.Stats())
			}
			b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.call(side.queue, body); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process's CPU time per op since before, as
// cpu-µs/op: on a shared machine it moves far less than ns/op.
func reportCPU(b *testing.B, before time.Duration) {
	b.ReportMetric(float64(processCPU()-before)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// reportAcks reports the basic.ack frames w sent per op since before.
func reportAcks(b *testing.B, w *worker.Worker, before worker.Stats) {
	b.ReportMetric(float64(w.Stats().Acks-before.Acks)/float64(b.N), "acks/op")
}

// benchCaller is figway's side of BenchmarkRequest, pared down: one
// channel, direct reply-to, replies matched to calls by correlation id.
type benchCaller struct {
	mu      sync.Mutex // serializes publishes on ch
	ch      *amqp.Channel
	seq     atomic.Uint64
	pending sync.Map // correlation id → chan []byte
}

func newBenchCaller(b *testing.B, url string) *benchCaller {
	ch := rabbitmq.Channel(b, url)
	replies, err := ch.Consume(wire.DirectReplyTo, "", true, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	c := &benchCaller{ch: ch}
	go func() {
		for d := range replies {
			if r, ok := c.pending.LoadAndDelete(d.CorrelationId); ok {
				r.(chan []byte) <- d.Body
			}
		}
	}()
	return c
}

// call publishes body to queue as figway publishes an rpc request, and
// waits for its reply.
func (c *benchCaller) call(queue string, body []byte) error {
	id := strconv.FormatUint(c.seq.Add(1), 16)
	r := wire.Request{
		Method: echoMethod, Body: body, ContentType: wire.ContentTypeProtobuf,
		MessageID: id, Source: "figway://bench", CorrelationID: id, ReplyTo: wire.DirectReplyTo,
		Deadline: time.Now().Add(waitFor), Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	reply := make(chan []byte, 1)
	c.pending.Store(id, reply)
	c.mu.Lock()
	err := c.ch.Publish("", queue, false, false, amqpwire.Publishing(&r, time.Now()))
	c.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case got := <-reply:
		if len(got) != len(body) {
			return fmt.Errorf("reply of %d bytes; want %d", len(got), len(body))
		}
		return nil
	case <-time.After(waitFor):
		c.pending.Delete(id)
		return fmt.Errorf("no reply to %s within %v", id, waitFor)
	}
}
