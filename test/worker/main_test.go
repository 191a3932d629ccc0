package worker_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/protobuf/proto"

	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
	"github.com/figway/figway/worker"
)

func TestMain(m *testing.M) { rabbitmq.Main(m) }

// waitFor is how long a test waits for anything the broker or the worker
// should do promptly.
const waitFor = 10 * time.Second

// testLogger returns a logger that writes to the test's log, and drops what
// comes after the test has ended (a handler outliving Run may still log).
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// startWorker builds a worker for cfg, lets register add its handlers,
// runs it until the test ends (or stop is called) and returns once it
// consumes. The test fails if Run does not return nil promptly after its
// context is cancelled.
func startWorker(t *testing.T, cfg worker.Config, register func(*worker.Worker)) (w *worker.Worker, stop func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	w = worker.New(cfg)
	register(w)
	run := runWorker(t, w)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if err := run(); err != nil {
				t.Errorf("Run = %v; want nil", err)
			}
		})
	}
	t.Cleanup(stop)
	poll.Until(t, waitFor, "the worker consumes", func() bool { return w.Stats().Connects > 0 })
	return w, stop
}

// runWorker runs w in a goroutine. stop cancels Run's context and returns
// what Run returned; it fails the test if Run takes longer than waitFor.
func runWorker(t *testing.T, w *worker.Worker) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(waitFor + 5*time.Second):
				t.Fatalf("Run did not return after its context was cancelled")
			}
		})
		return err
	}
}

func channel(t *testing.T, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("Channel: %v", err)
	}
	return ch
}

// caller plays figway's side: it publishes requests and reads their replies
// on direct reply-to, consumed (no-ack, on the publishing channel) before
// the first publish.
type caller struct {
	t       *testing.T
	ch      *amqp.Channel
	replies <-chan amqp.Delivery
}

func newCaller(t *testing.T, url string) *caller {
	t.Helper()
	ch := channel(t, rabbitmq.Dial(t, url))
	replies, err := ch.Consume(wire.DirectReplyTo, "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("Consume(%s): %v", wire.DirectReplyTo, err)
	}
	return &caller{t: t, ch: ch, replies: replies}
}

// request returns an rpc request for method with msg as its protobuf body
// and a deadline 10 s away; the caller fills in its reply path.
func request(t *testing.T, method string, msg proto.Message) wire.Request {
	t.Helper()
	body, err := proto.Marshal(msg)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return wire.Request{
		Method:      method,
		Body:        body,
		ContentType: wire.ContentTypeProtobuf,
		MessageID:   wire.NewID(),
		Source:      "figway://test",
		Deadline:    time.Now().Add(waitFor),
	}
}

// publish sends r to the default exchange with routing key queue, as an rpc
// call answered on c's direct reply-to, and returns its correlation id.
func (c *caller) publish(queue string, r wire.Request) string {
	c.t.Helper()
	r.CorrelationID = wire.NewID()
	r.ReplyTo = wire.DirectReplyTo
	c.publishRaw("", queue, amqpwire.Publishing(&r, time.Now()))
	return r.CorrelationID
}

func (c *caller) publishRaw(exchange, key string, p amqp.Publishing) {
	c.t.Helper()
	if err := c.ch.PublishWithContext(context.Background(), exchange, key, false, false, p); err != nil {
		c.t.Fatalf("Publish: %v", err)
	}
}

// next returns the next reply, failing the test after waitFor.
func (c *caller) next() amqp.Delivery {
	c.t.Helper()
	select {
	case d, ok := <-c.replies:
		if !ok {
			c.t.Fatal("reply consumer closed")
		}
		return d
	case <-time.After(waitFor):
		c.t.Fatal("timed out waiting for a reply")
	}
	panic("unreachable")
}

// call publishes r to queue and returns its reply.
func (c *caller) call(queue string, r wire.Request) amqp.Delivery {
	c.t.Helper()
	id := c.publish(queue, r)
	d := c.next()
	if d.CorrelationId != id {
		c.t.Fatalf("reply correlation_id = %q; want %q", d.CorrelationId, id)
	}
	return d
}

// noReply fails the test if a reply arrives within d.
func (c *caller) noReply(d time.Duration) {
	c.t.Helper()
	select {
	case r := <-c.replies:
		c.t.Fatalf("unexpected reply: correlation_id %q, headers %v, body %q", r.CorrelationId, r.Headers, r.Body)
	case <-time.After(d):
	}
}
