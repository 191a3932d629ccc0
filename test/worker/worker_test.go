package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/sourcecontextpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
	"github.com/figway/figway/worker"
)

// Methods of the test service. Messages are well-known types, so these
// tests depend on no generated API.
const (
	echoMethod    = "test.v1.Test/Echo"    // StringValue → "echo: " + value
	upperMethod   = "test.v1.Test/Upper"   // SourceContext → file_name upper-cased
	failMethod    = "test.v1.Test/Fail"    // StringValue names the error to return
	panicMethod   = "test.v1.Test/Panic"   // panics
	blockMethod   = "test.v1.Test/Block"   // returns ctx.Err() once ctx is done
	inspectMethod = "test.v1.Test/Inspect" // Empty → what the handler's ctx shows
)

const testQueue = "test.requests"

// fixture is a worker serving the test service in a virtual host of its own.
type fixture struct {
	w      *worker.Worker
	url    string
	echoes atomic.Int64 // Echo handler runs
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{url: rabbitmq.ForTest(t).NewVHost(t)}
	f.w, _ = startWorker(t, worker.Config{URL: f.url, Queue: testQueue, Declare: &worker.Queue{}}, f.register)
	return f
}

func (f *fixture) register(w *worker.Worker) {
	worker.Handle(w, echoMethod, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		f.echoes.Add(1)
		return wrapperspb.String("echo: " + req.GetValue()), nil
	})
	worker.Handle(w, upperMethod, func(ctx context.Context, req *sourcecontextpb.SourceContext) (*sourcecontextpb.SourceContext, error) {
		return &sourcecontextpb.SourceContext{FileName: strings.ToUpper(req.GetFileName())}, nil
	})
	worker.Handle(w, failMethod, func(ctx context.Context, req *wrapperspb.StringValue) (*emptypb.Empty, error) {
		switch req.GetValue() {
		case "not-found":
			st, err := status.New(codes.NotFound, "order o-9 not found").
				WithDetails(&errdetails.ResourceInfo{ResourceType: "order", ResourceName: "o-9"})
			if err != nil {
				return nil, err
			}
			return nil, st.Err()
		case "wrapped":
			return nil, fmt.Errorf("check: %w", status.Error(codes.PermissionDenied, "not yours"))
		case "deadline":
			return nil, fmt.Errorf("query: %w", context.DeadlineExceeded)
		case "canceled":
			return nil, context.Canceled
		}
		return nil, errors.New("boom")
	})
	worker.Handle(w, panicMethod, func(ctx context.Context, req *emptypb.Empty) (*emptypb.Empty, error) {
		panic("handler bug")
	})
	worker.Handle(w, blockMethod, func(ctx context.Context, req *emptypb.Empty) (*emptypb.Empty, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	worker.Handle(w, inspectMethod, func(ctx context.Context, req *emptypb.Empty) (*structpb.Struct, error) {
		seen := map[string]any{"event_id": worker.EventID(ctx)}
		if d, ok := ctx.Deadline(); ok {
			seen["deadline"] = d.UTC().Format(time.RFC3339Nano)
		}
		md := map[string]any{}
		for k, vs := range worker.Metadata(ctx) {
			var l []any
			for _, v := range vs {
				l = append(l, v)
			}
			md[k] = l
		}
		seen["metadata"] = md
		seen["traceparent"], seen["tracestate"] = worker.TraceContext(ctx)
		return structpb.NewStruct(seen)
	})
}

func notFound(t *testing.T) *status.Status {
	st, err := status.New(codes.NotFound, "order o-9 not found").
		WithDetails(&errdetails.ResourceInfo{ResourceType: "order", ResourceName: "o-9"})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestReply covers what a request comes back with: its response in its own
// encoding, or the status the handler, the decoder or the dispatcher chose.
func TestReply(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := newCaller(t, f.url)

	jsonReq := func(method, body string) wire.Request {
		r := request(t, method, &emptypb.Empty{})
		r.ContentType, r.Body = wire.ContentTypeJSON, []byte(body)
		return r
	}
	rawReq := func(method, contentType string, body []byte) wire.Request {
		r := request(t, method, &emptypb.Empty{})
		r.ContentType, r.Body = contentType, body
		return r
	}
	tests := []struct {
		name     string
		req      wire.Request
		want     proto.Message // response; nil for an error reply
		wantCode codes.Code
		wantMsg  string         // checked when wantCode is not OK
		wantSt   *status.Status // if set, the whole status, details included
		noEcho   bool           // the Echo handler must not run
	}{
		{name: "protobuf round trip", req: request(t, echoMethod, wrapperspb.String("hi")), want: wrapperspb.String("echo: hi")},
		{name: "leading slash in method", req: request(t, "/"+echoMethod, wrapperspb.String("hi")), want: wrapperspb.String("echo: hi")},
		{name: "json round trip", req: jsonReq(echoMethod, `"hi"`), want: wrapperspb.String("echo: hi")},
		{name: "json ignores unknown fields", req: jsonReq(upperMethod, `{"fileName": "a.proto", "addedLater": 1}`),
			want: &sourcecontextpb.SourceContext{FileName: "A.PROTO"}},
		{name: "json content type with parameters", req: rawReq(echoMethod, "application/json; charset=utf-8", []byte(`"x"`)), want: wrapperspb.String("echo: x")},
		{name: "empty json body is the empty message", req: jsonReq(echoMethod, ""), want: wrapperspb.String("echo: ")},
		{name: "status error with details", req: request(t, failMethod, wrapperspb.String("not-found")), wantCode: codes.NotFound, wantSt: notFound(t)},
		{name: "wrapped status error", req: request(t, failMethod, wrapperspb.String("wrapped")), wantCode: codes.PermissionDenied,
			wantMsg: "check: rpc error: code = PermissionDenied desc = not yours"},
		{name: "plain error is UNKNOWN", req: request(t, failMethod, wrapperspb.String("plain")), wantCode: codes.Unknown, wantMsg: "boom"},
		{name: "context deadline error", req: request(t, failMethod, wrapperspb.String("deadline")), wantCode: codes.DeadlineExceeded,
			wantMsg: "query: context deadline exceeded"},
		{name: "context canceled error", req: request(t, failMethod, wrapperspb.String("canceled")), wantCode: codes.Canceled,
			wantMsg: "context canceled"},
		{name: "panic is INTERNAL", req: request(t, panicMethod, &emptypb.Empty{}), wantCode: codes.Internal, wantMsg: "worker: handler panicked"},
		{name: "served after a panic", req: request(t, echoMethod, wrapperspb.String("still here")), want: wrapperspb.String("echo: still here")},
		{name: "malformed protobuf", req: rawReq(echoMethod, wire.ContentTypeProtobuf, []byte{0xff, 0xff, 0xff}), wantCode: codes.InvalidArgument, noEcho: true},
		{name: "malformed json", req: jsonReq(echoMethod, `{"value":`), wantCode: codes.InvalidArgument, noEcho: true},
		{name: "json of the wrong shape", req: jsonReq(echoMethod, `{"value": "x"}`), wantCode: codes.InvalidArgument, noEcho: true},
		{name: "unknown content type", req: rawReq(echoMethod, "text/plain", []byte("hi")), wantCode: codes.InvalidArgument,
			wantMsg: `worker: content type "text/plain" is neither application/protobuf nor application/json`, noEcho: true},
		{name: "unknown method", req: request(t, "test.v1.Test/Nope", &emptypb.Empty{}), wantCode: codes.Unimplemented,
			wantMsg: `worker: unknown method "test.v1.Test/Nope"`},
		{name: "handler outlives its deadline", req: func() wire.Request {
			r := request(t, blockMethod, &emptypb.Empty{})
			r.Deadline = time.Now().Add(300 * time.Millisecond)
			return r
		}(), wantCode: codes.DeadlineExceeded, wantMsg: "context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.t = t
			echoes := f.echoes.Load()
			d := c.call(testQueue, tt.req)

			if d.ContentType != tt.req.ContentType || d.AppId != worker.AppID {
				t.Errorf("reply content_type, app_id = %q, %q; want %q, %q", d.ContentType, d.AppId, tt.req.ContentType, worker.AppID)
			}
			st, err := wire.ReplyStatus(d.Headers)
			if err != nil {
				t.Fatalf("ReplyStatus: %v", err)
			}
			if got := st.Code(); got != tt.wantCode {
				t.Fatalf("reply status = %v (%q); want %v", got, st.Message(), tt.wantCode)
			}
			switch {
			case tt.wantSt != nil:
				if diff := cmp.Diff(tt.wantSt.Proto(), st.Proto(), protocmp.Transform()); diff != "" {
					t.Errorf("reply status (-want +got):\n%s", diff)
				}
			case tt.wantCode != codes.OK && tt.wantMsg != "":
				if st.Message() != tt.wantMsg {
					t.Errorf("reply message = %q; want %q", st.Message(), tt.wantMsg)
				}
			}
			if tt.want == nil {
				if len(d.Body) != 0 {
					t.Errorf("error reply body = %q; want empty", d.Body)
				}
			} else {
				got := tt.want.ProtoReflect().New().Interface()
				if tt.req.ContentType == wire.ContentTypeProtobuf {
					err = proto.Unmarshal(d.Body, got)
				} else {
					err = protojson.Unmarshal(d.Body, got)
				}
				if err != nil {
					t.Fatalf("decode reply body %q: %v", d.Body, err)
				}
				if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
					t.Errorf("reply body (-want +got):\n%s", diff)
				}
			}
			if tt.noEcho && f.echoes.Load() != echoes {
				t.Errorf("Echo handler ran; want it not run")
			}
		})
	}
	if got := f.w.Stats().Panics; got != 1 {
		t.Errorf("Stats().Panics = %d; want 1", got)
	}
}

// TestHandlerContext checks that a handler's context carries the request's
// deadline, forwarded metadata, trace context and event id — from both forms
// of a request (docs/wire-protocol.md): with the cloudEvents:* headers and
// without.
func TestHandlerContext(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := newCaller(t, f.url)

	for _, cloudEvents := range []bool{false, true} {
		t.Run(fmt.Sprintf("cloudevents=%v", cloudEvents), func(t *testing.T) {
			c.t = t
			r := request(t, inspectMethod, &emptypb.Empty{})
			r.CloudEvents = cloudEvents
			r.Deadline = time.Now().Add(time.Hour).UTC()
			r.Metadata = map[string][]string{"x-tenant-id": {"t-1"}, "x-roles": {"a", "b"}}
			r.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			r.Tracestate = "vendor=x"
			id := c.publish(testQueue, r)
			d := c.next()
			if d.CorrelationId != id {
				t.Fatalf("reply correlation_id = %q; want %q", d.CorrelationId, id)
			}
			if st, err := wire.ReplyStatus(d.Headers); err != nil || st != nil {
				t.Fatalf("reply status = %v, %v; want OK", st, err)
			}
			var got structpb.Struct
			if err := proto.Unmarshal(d.Body, &got); err != nil {
				t.Fatalf("decode reply: %v", err)
			}
			want := map[string]any{
				"deadline":    r.Deadline.Format(time.RFC3339Nano),
				"event_id":    r.MessageID,
				"metadata":    map[string]any{"x-tenant-id": []any{"t-1"}, "x-roles": []any{"a", "b"}},
				"traceparent": r.Traceparent,
				"tracestate":  "vendor=x",
			}
			if diff := cmp.Diff(want, got.AsMap()); diff != "" {
				t.Errorf("handler context (-want +got):\n%s", diff)
			}
		})
	}
}

// TestContextOutsideHandler checks the accessors on a context that serves
// no request.
func TestContextOutsideHandler(t *testing.T) {
	ctx := context.Background()
	tp, ts := worker.TraceContext(ctx)
	if md, id := worker.Metadata(ctx), worker.EventID(ctx); md != nil || id != "" || tp != "" || ts != "" {
		t.Errorf("Metadata, EventID, TraceContext = %v, %q, %q, %q; want zero values", md, id, tp, ts)
	}
}

// TestExpiredRequestIsDropped checks that a request whose deadline has
// passed is acked without running its handler and without a reply.
func TestExpiredRequestIsDropped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := newCaller(t, f.url)

	r := request(t, echoMethod, wrapperspb.String("late"))
	r.CorrelationID, r.ReplyTo = wire.NewID(), wire.DirectReplyTo
	p := amqpwire.Publishing(&r, time.Now())
	// The deadline passed (as if the request had waited in the prefetch
	// buffer, or the clocks disagree) but the broker's TTL did not drop it.
	p.Headers[wire.HeaderDeadline] = time.Now().Add(-time.Second).Format(wire.TimeLayout)
	p.Expiration = ""
	c.publishRaw("", testQueue, p)

	poll.Until(t, waitFor, "the request is dropped", func() bool { return f.w.Stats().Expired == 1 })
	c.noReply(200 * time.Millisecond)
	if n := f.echoes.Load(); n != 0 {
		t.Errorf("Echo handler ran %d times; want 0", n)
	}
	// It was acked: nothing waits in the queue or unacked for redelivery.
	if d := c.call(testQueue, request(t, echoMethod, wrapperspb.String("next"))); d.Headers[wire.HeaderStatus] != nil {
		t.Fatalf("next call failed: %v", d.Headers)
	}
	if got := f.w.Stats(); got.Received != 2 || got.Replied != 1 {
		t.Errorf("Stats() = %+v; want Received 2, Replied 1", got)
	}
}

// TestBadDeadlineHeader checks that a figway-deadline that does not parse is
// INVALID_ARGUMENT.
func TestBadDeadlineHeader(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := newCaller(t, f.url)
	r := request(t, echoMethod, wrapperspb.String("x"))
	r.CorrelationID, r.ReplyTo = wire.NewID(), wire.DirectReplyTo
	p := amqpwire.Publishing(&r, time.Now())
	p.Headers[wire.HeaderDeadline] = "tomorrow"
	c.publishRaw("", testQueue, p)
	d := c.next()
	if st, _ := wire.ReplyStatus(d.Headers); st.Code() != codes.InvalidArgument {
		t.Errorf("reply status = %v; want InvalidArgument", st)
	}
}

// TestConcurrencyLimit sends 50 requests at once to a worker with
// Concurrency 3 and checks that exactly 3 handlers ran at the peak: never
// more, and the limit is used.
func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	url := rabbitmq.ForTest(t).NewVHost(t)
	var running, peak, calls atomic.Int64
	_, _ = startWorker(t, worker.Config{URL: url, Queue: testQueue, Declare: &worker.Queue{}, Concurrency: 3}, func(w *worker.Worker) {
		worker.Handle(w, echoMethod, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
			calls.Add(1)
			n := running.Add(1)
			defer running.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(10 * time.Millisecond)
			return req, nil
		})
	})
	c := newCaller(t, url)
	const n = 50
	want := map[string]bool{}
	for range n {
		want[c.publish(testQueue, request(t, echoMethod, wrapperspb.String("x")))] = true
	}
	for range n {
		d := c.next()
		if !want[d.CorrelationId] {
			t.Fatalf("unexpected or duplicate reply %q", d.CorrelationId)
		}
		delete(want, d.CorrelationId)
	}
	if got := peak.Load(); got != 3 {
		t.Errorf("peak concurrent handlers = %d; want 3", got)
	}
	if got := calls.Load(); got != n {
		t.Errorf("handler calls = %d; want %d", got, n)
	}
}

// TestEvents checks requests without reply_to: a success is acked, a
// failure rejected without requeue, into the queue's dead-letter exchange.
// The queue is declared by the test (Config.Declare is nil).
func TestEvents(t *testing.T) {
	t.Parallel()
	url := rabbitmq.ForTest(t).NewVHost(t)
	setup := channel(t, rabbitmq.Dial(t, url))
	for _, q := range []struct {
		name string
		args amqp.Table
	}{
		{"events.dead", nil},
		{"events", amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "events.dead"}},
	} {
		if _, err := setup.QueueDeclare(q.name, true, false, false, false, q.args); err != nil {
			t.Fatalf("QueueDeclare(%s): %v", q.name, err)
		}
	}
	got := make(chan string, 2)
	w, stop := startWorker(t, worker.Config{URL: url, Queue: "events"}, func(w *worker.Worker) {
		worker.Handle(w, echoMethod, func(ctx context.Context, req *wrapperspb.StringValue) (*emptypb.Empty, error) {
			got <- req.GetValue() + " " + worker.EventID(ctx)
			if req.GetValue() == "bad" {
				return nil, status.Error(codes.FailedPrecondition, "bad event")
			}
			return &emptypb.Empty{}, nil
		})
	})
	publish := func(value string) string {
		r := request(t, echoMethod, wrapperspb.String(value))
		r.Deadline, r.Persistent = time.Time{}, true
		if err := setup.PublishWithContext(context.Background(), "", "events", false, false, amqpwire.Publishing(&r, time.Now())); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		return r.MessageID
	}
	okID, badID := publish("ok"), publish("bad")
	poll.Until(t, waitFor, "both events are settled", func() bool { s := w.Stats(); return s.Events == 1 && s.Rejected == 1 })
	// Handlers run concurrently: the order is not the queue's.
	seen := map[string]bool{<-got: true, <-got: true}
	if want := map[string]bool{"ok " + okID: true, "bad " + badID: true}; !cmp.Equal(seen, want) {
		t.Errorf("handler saw %v; want %v", seen, want)
	}
	// Settles are gathered (Config.AckWindow): the reject reaches the broker
	// a few milliseconds after the handler returned.
	var dead amqp.Delivery
	poll.Until(t, waitFor, "the rejected event is dead-lettered", func() bool {
		d, ok, err := setup.Get("events.dead", true)
		if err != nil {
			t.Fatalf("Get(events.dead): %v", err)
		}
		dead = d
		return ok
	})
	if dead.MessageId != badID {
		t.Errorf("dead-lettered event %q; want %q", dead.MessageId, badID)
	}
	// Nothing was left unacked: once the worker's connection is gone, the
	// queue is still empty and the handler did not run again.
	stop()
	if q, err := setup.QueueDeclarePassive("events", true, false, false, false, nil); err != nil || q.Messages != 0 {
		t.Errorf("events queue: %d messages, %v; want 0", q.Messages, err)
	}
	select {
	case g := <-got:
		t.Errorf("handler ran again for %q", g)
	default:
	}
}
