package gateway

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/figway/figway/wire"
)

// Attributes figway adds to the ingress's SERVER span of a call, and to
// its own spans (docs/operations.md, "Tracing").
const (
	// AttrRoute is the route's method, package.Service/Method.
	AttrRoute = attribute.Key("figway.route")
	// AttrSide is where the call went: "broker" or "legacy".
	AttrSide = attribute.Key("figway.side")
	// AttrOutcome is the call's gRPC status code: "OK", "Unavailable", …
	AttrOutcome = attribute.Key("figway.outcome")
	// AttrShadow is true on a shadow copy's span.
	AttrShadow = attribute.Key("figway.shadow")
	// AttrStreamMessages is the number of messages a stream of a
	// server-streaming route passed to its caller.
	AttrStreamMessages = attribute.Key("figway.stream.messages")
)

// Names of the events figway records on the span of a call's context
// (adapters/amqp records the first two).
const (
	EventPublished     = "published"
	EventConfirmed     = "confirmed"
	EventReplyReceived = "reply received"
)

// Spans are made only by a Gateway with a Tracer (Options.Tracer): without
// one, a call's path asks g.tracer != nil and does what it did before
// tracing existed.

// traceInvoke runs r's call c under the tracing of the SERVER span in ctx
// (the ingress's): the route, the side the call went to and its outcome
// become attributes of that span.
func (g *Gateway) traceInvoke(ctx context.Context, r *Route, c *Call) (*Result, error) {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(AttrRoute.String(r.Method))
	res, err := g.invokeRoute(ctx, r, c)
	st := Status(err)
	if st != nil {
		span.SetStatus(codes.Error, st.Message())
	}
	span.SetAttributes(AttrOutcome.String(st.Code().String())) // a nil status is OK
	return res, err
}

// traceSide records on ctx's span which side a call went to.
func (g *Gateway) traceSide(ctx context.Context, side Target) {
	if g.tracer != nil {
		trace.SpanFromContext(ctx).SetAttributes(AttrSide.String(string(side)))
	}
}

// produce starts the PRODUCER span of req's publish on r, a child of
// ctx's span (or a root linked to link, for a shadow copy, when link is
// valid), and writes its context on req as traceparent and tracestate: the
// worker's CONSUMER span becomes its child.
func (g *Gateway) produce(ctx context.Context, r *Route, req *wire.Request, link trace.SpanContext) (context.Context, trace.Span) {
	dest := r.Exchange
	if dest == "" {
		dest = r.RoutingKey // the default exchange routes by queue name
	}
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemRabbitMQ,
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingDestinationName(r.Exchange),
			semconv.MessagingRabbitMQDestinationRoutingKey(r.RoutingKey),
			semconv.MessagingMessageID(req.MessageID),
			AttrRoute.String(r.Method),
		),
	}
	if link.IsValid() {
		opts = append(opts, trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: link}),
			trace.WithAttributes(AttrShadow.Bool(true)))
	}
	ctx, span := g.tracer.Start(ctx, "publish "+dest, opts...)
	req.Traceparent, req.Tracestate = traceparent(span.SpanContext())
	return ctx, span
}

// produced ends the PRODUCER span of req, whose publish ended with err.
func produced(span trace.Span, req *wire.Request, err error) {
	if req.CorrelationID != "" {
		span.SetAttributes(semconv.MessagingMessageConversationID(req.CorrelationID))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorTypeKey.String(Status(err).Code().String()))
	}
	span.End()
}

// traceparent renders sc as W3C traceparent and tracestate headers.
func traceparent(sc trace.SpanContext) (string, string) {
	tid, sid := sc.TraceID(), sc.SpanID()
	b := []byte("00-00000000000000000000000000000000-0000000000000000-00")
	const hexdigits = "0123456789abcdef"
	for i, x := range tid {
		b[3+2*i], b[4+2*i] = hexdigits[x>>4], hexdigits[x&15]
	}
	for i, x := range sid {
		b[36+2*i], b[37+2*i] = hexdigits[x>>4], hexdigits[x&15]
	}
	f := byte(sc.TraceFlags())
	b[53], b[54] = hexdigits[f>>4], hexdigits[f&15]
	return string(b), boundTracestate(sc.TraceState().String())
}
