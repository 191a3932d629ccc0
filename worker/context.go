package worker

import (
	"context"

	"github.com/figway/figway/wire"
	amqp "github.com/rabbitmq/amqp091-go"
)

// requestKey is the context key of the *request a handler serves.
type requestKey struct{}

// request is what a handler's context knows of its AMQP message. Headers
// are decoded only when asked for: most handlers never look.
type request struct {
	headers   amqp.Table
	messageID string
	// reply is what the handler set with SetHeader, SetTrailer and
	// SetHTTPStatus.
	reply replyMeta
}

func withRequest(ctx context.Context, d *amqp.Delivery) (context.Context, *request) {
	r := &request{headers: d.Headers, messageID: d.MessageId}
	return context.WithValue(ctx, requestKey{}, r), r
}

func requestFrom(ctx context.Context) *request {
	r, _ := ctx.Value(requestKey{}).(*request)
	return r
}

// Metadata returns the gRPC metadata and HTTP headers that figway forwarded
// with the request served under ctx (its figway-md-<key> headers), keyed by
// lower-case <key>. figway forwards only the keys a route allow-lists. It
// returns nil outside a handler or when nothing was forwarded; the map is
// the caller's to keep or change.
func Metadata(ctx context.Context) map[string][]string {
	if r := requestFrom(ctx); r != nil {
		return wire.Metadata(r.headers)
	}
	return nil
}

// TraceContext returns the W3C trace context (traceparent and tracestate
// headers) of the request served under ctx, for a tracer to continue the
// caller's trace. Both are "" when absent or outside a handler.
func TraceContext(ctx context.Context) (traceparent, tracestate string) {
	if r := requestFrom(ctx); r != nil {
		return wire.TraceContext(r.headers)
	}
	return "", ""
}

// EventID returns the event id (AMQP message_id, also cloudEvents:id) of
// the request served under ctx, or "" outside a handler. figway makes it
// unique per call, and a redelivered request keeps it: it is a natural
// idempotency key and, for an event, the id the caller was answered with.
func EventID(ctx context.Context) string {
	if r := requestFrom(ctx); r != nil {
		return r.messageID
	}
	return ""
}
