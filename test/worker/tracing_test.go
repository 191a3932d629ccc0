package worker_test

import (
	"context"
	"slices"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
	"github.com/figway/figway/worker"
)

func events(s sdktrace.ReadOnlySpan) []string {
	var names []string
	for _, e := range s.Events() {
		names = append(names, e.Name)
	}
	return names
}

// With a tracer provider, each request runs under a CONSUMER span, a child
// of its traceparent, that the handler's spans nest under; the reply, the
// ack and a dropped expired request are recorded on it.
func TestConsumerSpan(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	url := rabbitmq.ForTest(t).NewVHost(t)
	startWorker(t, worker.Config{URL: url, Queue: testQueue, Declare: &worker.Queue{}, TracerProvider: tp}, func(w *worker.Worker) {
		worker.Handle(w, echoMethod, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
			_, span := tp.Tracer("handler").Start(ctx, "handler")
			span.End()
			return wrapperspb.String("echo: " + req.GetValue()), nil
		})
	})
	c := newCaller(t, url)
	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	r := request(t, echoMethod, wrapperspb.String("x"))
	r.Traceparent = "00-" + traceID + "-" + parent + "-01"
	if d := c.call(testQueue, r); d.Headers[wire.HeaderStatus] != nil {
		t.Fatalf("call failed: %v", d.Headers)
	}

	late := request(t, echoMethod, wrapperspb.String("late"))
	late.CorrelationID, late.ReplyTo = wire.NewID(), wire.DirectReplyTo
	late.Traceparent = "00-" + traceID + "-" + parent + "-01"
	p := amqpwire.Publishing(&late, time.Now())
	p.Headers[wire.HeaderDeadline] = time.Now().Add(-time.Second).Format(wire.TimeLayout)
	p.Expiration = ""
	c.publishRaw("", testQueue, p)

	poll.Until(t, waitFor, "three spans ended", func() bool { return len(rec.Ended()) >= 3 })
	var consumers []sdktrace.ReadOnlySpan
	var handler sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.SpanKind() {
		case trace.SpanKindConsumer:
			consumers = append(consumers, s)
		default:
			handler = s
		}
	}
	if len(consumers) != 2 || handler == nil {
		t.Fatalf("spans: %d CONSUMER, handler %v; want 2 and the handler's", len(consumers), handler)
	}
	served, expired := consumers[0], consumers[1]
	if served.Parent().SpanID().String() != parent || served.SpanContext().TraceID().String() != traceID || !served.Parent().IsRemote() {
		t.Errorf("CONSUMER span's parent = %v in trace %v; want %s in %s", served.Parent().SpanID(), served.SpanContext().TraceID(), parent, traceID)
	}
	if served.Name() != "process "+echoMethod {
		t.Errorf("CONSUMER span named %q", served.Name())
	}
	if handler.Parent().SpanID() != served.SpanContext().SpanID() {
		t.Errorf("the handler's span is not a child of the CONSUMER span")
	}
	if ev := events(served); !slices.Equal(ev, []string{"reply published", "acked"}) {
		t.Errorf("served request's events = %q; want reply published, acked", ev)
	}
	if ev := events(expired); !slices.Equal(ev, []string{"expired: dropped", "acked"}) {
		t.Errorf("expired request's events = %q; want expired: dropped, acked", ev)
	}
}

// A streaming handler runs under a CONSUMER span too, which records how
// many messages the stream sent and the end's status.
func TestStreamConsumerSpan(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	url := rabbitmq.ForTest(t).NewVHost(t)
	const watch = "test.v1.Echo/Watch"
	startWorker(t, worker.Config{URL: url, Queue: testQueue, Declare: &worker.Queue{}, TracerProvider: tp}, func(w *worker.Worker) {
		worker.HandleStream(w, watch, func(ctx context.Context, req *wrapperspb.StringValue, send func(*wrapperspb.StringValue) error) error {
			for range 3 {
				if err := send(req); err != nil {
					return err
				}
			}
			return status.Error(codes.NotFound, "gone")
		})
	})
	c := newCaller(t, url)
	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	r := request(t, watch, wrapperspb.String("x"))
	r.Traceparent = "00-" + traceID + "-" + parent + "-01"
	c.publish(testQueue, r)
	for range 4 { // three messages and the end
		c.next()
	}
	poll.Until(t, waitFor, "the CONSUMER span ended", func() bool { return len(rec.Ended()) >= 1 })
	s := rec.Ended()[0]
	if s.SpanKind() != trace.SpanKindConsumer || s.Parent().SpanID().String() != parent || s.SpanContext().TraceID().String() != traceID {
		t.Errorf("span %v, parent %v in trace %v; want CONSUMER, a child of %s in %s", s.SpanKind(), s.Parent().SpanID(), s.SpanContext().TraceID(), parent, traceID)
	}
	got := map[string]string{}
	for _, kv := range s.Attributes() {
		got[string(kv.Key)] = kv.Value.Emit()
	}
	if got["figway.stream.messages"] != "3" || got["rpc.response.status_code"] != "NotFound" {
		t.Errorf("span attributes %v; want figway.stream.messages 3, rpc.response.status_code NotFound", got)
	}
}
