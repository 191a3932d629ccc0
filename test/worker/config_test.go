package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
	"github.com/figway/figway/worker"
)

// TestDeclareQuorumBindings checks that Declare creates a quorum queue bound
// to a topic exchange: a request published to the exchange is answered.
func TestDeclareQuorumBindings(t *testing.T) {
	t.Parallel()
	url := rabbitmq.ForTest(t).NewVHost(t)
	cfg := worker.Config{URL: url, Queue: "orders.requests", Declare: &worker.Queue{
		Type:     worker.Quorum,
		Bindings: []worker.Binding{{Exchange: "orders", Key: "orders.#"}},
	}}
	_, _ = startWorker(t, cfg, (&fixture{}).register)
	c := newCaller(t, url)
	r := request(t, echoMethod, wrapperspb.String("routed"))
	r.CorrelationID, r.ReplyTo = wire.NewID(), wire.DirectReplyTo
	c.publishRaw("orders", "orders.get", amqpwire.Publishing(&r, time.Now()))
	if d := c.next(); d.CorrelationId != r.CorrelationID {
		t.Fatalf("reply correlation_id = %q; want %q", d.CorrelationId, r.CorrelationID)
	}
	// Declaring it as a quorum queue again is equivalent: it is one.
	ch := channel(t, rabbitmq.Dial(t, url))
	if _, err := ch.QueueDeclare("orders.requests", true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}); err != nil {
		t.Errorf("redeclare as quorum: %v", err)
	}
}

// TestRunRefusedTopology checks that Run gives up, with the broker's
// reason, when the queue exists with other properties.
func TestRunRefusedTopology(t *testing.T) {
	t.Parallel()
	url := rabbitmq.ForTest(t).NewVHost(t)
	ch := channel(t, rabbitmq.Dial(t, url))
	if _, err := ch.QueueDeclare(testQueue, true, false, false, false, amqp.Table{"x-max-length": 10}); err != nil {
		t.Fatal(err)
	}
	w := worker.New(worker.Config{URL: url, Queue: testQueue, Declare: &worker.Queue{}, Logger: testLogger(t)})
	(&fixture{}).register(w)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err := w.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "PRECONDITION_FAILED") {
		t.Errorf("Run = %v; want PRECONDITION_FAILED", err)
	}
}

// TestConfigErrors checks that Run reports every problem of its Config at
// once, without connecting and without quoting the URL's password.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  worker.Config
		want []string
	}{
		{"empty", worker.Config{}, []string{"URL: missing", "Queue: missing"}},
		{"bad URL", worker.Config{URL: "amqp://user:s3cret@host:port/", Queue: "q"}, []string{"URL: "}},
		{"bad scheme", worker.Config{URL: "http://user:s3cret@host/", Queue: "q"}, []string{"URL: AMQP scheme"}},
		{"URL and URLs", worker.Config{URL: "amqp://h/", URLs: []string{"amqp://h2/"}, Queue: "q"}, []string{"URLs: set URL or URLs, not both"}},
		{"bad URLs", worker.Config{URLs: []string{"amqp://h/", "amqp://user:s3cret@host:port/"}, Queue: "q"}, []string{"URLs[1]: "}},
		{"negatives", worker.Config{URL: "amqp://h/", Queue: "q", Prefetch: -1, Concurrency: -2, ShutdownGrace: -time.Second},
			[]string{"Prefetch: -1 is not within 0-65535", "Concurrency: -2", "ShutdownGrace: -1s"}},
		{"queue", worker.Config{URL: "amqp://h/", Queue: "q", Declare: &worker.Queue{Type: "stream", Bindings: []worker.Binding{{Key: "k"}}}},
			[]string{`Declare.Type: "stream"`, "Declare.Bindings[0].Exchange: missing"}},
		{"quorum", worker.Config{URL: "amqp://h/", Queue: "q", Declare: &worker.Queue{Type: worker.Quorum, Transient: true}},
			[]string{"Declare.Transient: quorum queues are always durable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := worker.New(tt.cfg)
			worker.Handle(w, echoMethod, func(context.Context, *emptypb.Empty) (*emptypb.Empty, error) { return nil, nil })
			err := w.Run(context.Background())
			if err == nil {
				t.Fatal("Run = nil; want an error")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Run = %q; want it to contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Run = %q; it quotes the password", err)
			}
		})
	}
	t.Run("no handlers", func(t *testing.T) {
		if err := worker.New(worker.Config{URL: "amqp://h/", Queue: "q"}).Run(context.Background()); err == nil {
			t.Error("Run with no handlers = nil; want an error")
		}
	})
}

// TestHandlePanics checks the misuses Handle refuses.
func TestHandlePanics(t *testing.T) {
	noop := func(context.Context, *emptypb.Empty) (*emptypb.Empty, error) { return nil, nil }
	tests := []struct {
		name string
		f    func(w *worker.Worker)
	}{
		{"no service", func(w *worker.Worker) { worker.Handle(w, "GetOrder", noop) }},
		{"empty method", func(w *worker.Worker) { worker.Handle(w, "orders.v1.OrderService/", noop) }},
		{"too many slashes", func(w *worker.Worker) { worker.Handle(w, "a/b/c", noop) }},
		{"duplicate", func(w *worker.Worker) { worker.Handle(w, echoMethod, noop); worker.Handle(w, "/"+echoMethod, noop) }},
		{"interface type", func(w *worker.Worker) {
			worker.Handle(w, echoMethod, func(context.Context, proto.Message) (*emptypb.Empty, error) { return nil, nil })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Handle did not panic")
				}
			}()
			tt.f(worker.New(worker.Config{}))
		})
	}
}
