package worker

import (
	"context"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/figway/figway/wire"
)

// instrumentation names the worker's tracer (the spans' otel.scope.name).
const instrumentation = "github.com/figway/figway/worker"

// Events recorded on a request's CONSUMER span (docs/operations.md,
// "Tracing").
const (
	eventReplied = "reply published"
	eventAcked   = "acked"
	// eventRejected: a poison request, rejected without requeue.
	eventRejected = "rejected"
	eventExpired  = "expired: dropped"
	eventLeft     = "left for redelivery"
)

// consumerSpan starts the CONSUMER span of d, a child of the span its
// traceparent names (figway's PRODUCER span), and returns ctx carrying it:
// the handler's own spans nest under it.
func (w *Worker) consumerSpan(ctx context.Context, d *amqp.Delivery) (context.Context, trace.Span) {
	tp, ts := wire.TraceContext(d.Headers)
	ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{wire.HeaderTraceparent: tp, "tracestate": ts})
	return w.tracer.Start(ctx, "process "+d.Type,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemRabbitMQ,
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(d.Exchange),
			semconv.MessagingRabbitMQDestinationRoutingKey(d.RoutingKey),
			semconv.MessagingDestinationSubscriptionName(w.cfg.Queue),
			semconv.MessagingMessageID(d.MessageId),
			semconv.MessagingMessageConversationID(d.CorrelationId),
			semconv.MessagingRabbitMQMessageDeliveryTag(int(d.DeliveryTag)),
			attribute.String("figway.method", d.Type),
			attribute.Bool("figway.redelivered", d.Redelivered),
		))
}

// traced records o, the outcome of a request, on its span.
func traced(span trace.Span, o *outcome) {
	if o.st != nil {
		span.SetStatus(otelcodes.Error, o.st.Message())
		span.SetAttributes(attribute.String("rpc.response.status_code", o.st.Code().String()))
	}
}

// streamTraced records on the CONSUMER span of ctx, if it records, the
// messages a stream sent before its end and the end's status, from err.
func streamTraced(ctx context.Context, sent int64, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.Int64("figway.stream.messages", sent))
	if err != nil {
		st := statusOf(err)
		span.SetStatus(otelcodes.Error, st.Message())
		span.SetAttributes(attribute.String("rpc.response.status_code", st.Code().String()))
	}
}
