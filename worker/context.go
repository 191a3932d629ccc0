package worker

import (
	"context"
	"time"

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

// requestContext is a handler's context: the request's value on top of
// its cancellable context, in one allocation.
type requestContext struct {
	context.Context
	request
	// cancel ends the context, if it is the handler's own (nil for an
	// event with no deadline); runs tracks it by correlation id, for an
	// rpc request (see handlerContext).
	cancel context.CancelFunc
	runs   *running
	id     string
}

func (c *requestContext) Value(key any) any {
	if key == (requestKey{}) {
		return &c.request
	}
	return c.Context.Value(key)
}

func withRequest(ctx context.Context, d *amqp.Delivery) (context.Context, *request) {
	c := &requestContext{Context: ctx, request: request{headers: d.Headers, messageID: d.MessageId}}
	return c, &c.request
}

// handlerContext returns the context a handler of d runs under, below ctx
// (the session's): it carries d's request, ends at deadline if
// hasDeadline, and, for an rpc request, ends when figway cancels the call
// (docs/wire-protocol.md, "Cancellation"). One cancellable context does
// all of it: the deadline's, if any. The caller releases it once the
// handler returned.
func (w *Worker) handlerContext(ctx context.Context, d *amqp.Delivery, deadline time.Time, hasDeadline bool) *requestContext {
	c := &requestContext{request: request{headers: d.Headers, messageID: d.MessageId}}
	switch {
	case hasDeadline:
		c.Context, c.cancel = context.WithDeadline(ctx, deadline)
	case d.ReplyTo != "":
		c.Context, c.cancel = context.WithCancel(ctx)
	default: // an event with no deadline: nothing ends it but the session
		c.Context = ctx
	}
	if d.ReplyTo != "" {
		c.runs, c.id = &w.runs, d.CorrelationId
		c.runs.track(c.id, c.cancel)
	}
	return c
}

// release forgets c's call and ends c: its handler returned.
func (c *requestContext) release() {
	if c.runs != nil {
		c.runs.untrack(c.id)
	}
	if c.cancel != nil {
		c.cancel()
	}
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
