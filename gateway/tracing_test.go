package gateway_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/figway/figway/gateway"
)

// tracedGateway is a gateway with a tracer whose ended spans rec holds.
func tracedGateway(t testing.TB, p gateway.Publisher, routes string) (*gateway.Gateway, *tracetest.SpanRecorder, trace.Tracer) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tracer := tp.Tracer("test")
	return gateway.New(gateway.Options{Publisher: p, Table: table(t, routes, nil), Tracer: tracer}), rec, tracer
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value.Emit()
	}
	return m
}

// The traceparent on the message is the PRODUCER span's, a child of the
// ingress's span; the ingress's span gets the route, side and outcome.
func TestPublishSpan(t *testing.T) {
	p := &publisher{fn: replyOK}
	g, rec, tracer := tracedGateway(t, p, "  - {method: "+getOrder+", exchange: orders, routing_key: orders.get}\n")
	ctx, server := tracer.Start(context.Background(), "server", trace.WithSpanKind(trace.SpanKindServer))
	if _, err := g.Invoke(ctx, call(getOrder)); err != nil {
		t.Fatal(err)
	}
	server.End()
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended; want the PRODUCER and the server span", len(spans))
	}
	prod, srv := spans[0], spans[1]
	if prod.SpanKind() != trace.SpanKindProducer || prod.Name() != "publish orders" {
		t.Errorf("first span: %v %q; want PRODUCER \"publish orders\"", prod.SpanKind(), prod.Name())
	}
	if prod.Parent().SpanID() != srv.SpanContext().SpanID() || prod.SpanContext().TraceID() != srv.SpanContext().TraceID() {
		t.Errorf("PRODUCER's parent = %v; want the server span %v", prod.Parent().SpanID(), srv.SpanContext().SpanID())
	}
	want := "00-" + prod.SpanContext().TraceID().String() + "-" + prod.SpanContext().SpanID().String() + "-01"
	if got := p.reqs[0].Traceparent; got != want {
		t.Errorf("message traceparent = %s; want the PRODUCER span's %s", got, want)
	}
	pa := attrs(prod)
	for k, v := range map[attribute.Key]string{
		"messaging.system": "rabbitmq", "messaging.destination.name": "orders",
		"messaging.rabbitmq.destination.routing_key": "orders.get", "messaging.message.id": p.reqs[0].MessageID,
		"figway.route": getOrder,
	} {
		if pa[k] != v {
			t.Errorf("PRODUCER %s = %q; want %q", k, pa[k], v)
		}
	}
	sa := attrs(srv)
	for k, v := range map[attribute.Key]string{gateway.AttrRoute: getOrder, gateway.AttrSide: "broker", gateway.AttrOutcome: "OK"} {
		if sa[k] != v {
			t.Errorf("server span %s = %q; want %q", k, sa[k], v)
		}
	}
}

// A failed call's outcome is its gRPC code, on both spans.
func TestPublishSpanFailed(t *testing.T) {
	p := &publisher{fn: failWith(errNacked)}
	g, rec, tracer := tracedGateway(t, p, "  - {method: "+getOrder+", routing_key: orders.get}\n")
	ctx, server := tracer.Start(context.Background(), "server")
	if _, err := g.Invoke(ctx, call(getOrder)); err == nil {
		t.Fatal("a nacked call succeeded")
	}
	server.End()
	spans := rec.Ended()
	if got := attrs(spans[0])["error.type"]; got != "Unavailable" {
		t.Errorf("PRODUCER error.type = %q; want Unavailable", got)
	}
	if got := attrs(spans[1])[gateway.AttrOutcome]; got != "Unavailable" {
		t.Errorf("server span outcome = %q; want Unavailable", got)
	}
	if spans[0].Name() != "publish orders.get" {
		t.Errorf("PRODUCER on the default exchange named %q; want \"publish orders.get\"", spans[0].Name())
	}
}

// BenchmarkInvokeTraced is BenchmarkInvoke with tracing on and every call
// sampled: the gateway's share of tracing's cost (the spans go nowhere).
func BenchmarkInvokeTraced(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	tracer := tp.Tracer("bench")
	g := gateway.New(gateway.Options{Publisher: nopPublisher{}, Table: table(b, "  - {method: "+getOrder+", routing_key: k}\n", nil), Tracer: tracer})
	c := call(getOrder)
	c.Body = make([]byte, 256)
	ctx, span := tracer.Start(context.Background(), "server")
	defer span.End()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Invoke(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}
