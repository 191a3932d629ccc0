package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/figway/figway/resilience"
	"github.com/figway/figway/wire"
)

// Errors of the streams of server-streaming routes (docs/wire-protocol.md,
// "Streaming replies"). [Code] maps each to its gRPC code.
var (
	// ErrStreamBroken: a stream stopped before its end message came — no
	// message for the idle bound (a dead worker, a lost connection), or
	// the deadline passed after its first message. It is wrapped together
	// with ErrUnavailable, or with context.DeadlineExceeded when the
	// deadline cut the stream (StreamRoute): a stream never ends OK short.
	ErrStreamBroken = errors.New("stream ended without its end message")
	// ErrStreamGap: a message of a stream was still missing when its end
	// came, or at the deadline. It is always wrapped together with
	// ErrBadReply (INTERNAL).
	ErrStreamGap = errors.New("stream has a gap")
	// ErrStreamBuffer: the caller read a stream slower than the worker
	// sent it, and the messages figway held for it went over
	// StreamBounds (RESOURCE_EXHAUSTED). The caller's doing: it does not
	// count for the route's breaker.
	ErrStreamBuffer = errors.New("stream buffer full: the caller reads slower than the worker sends")
	// ErrStreamOnly: a server-streaming route was asked for one answer
	// (InvokeRoute) by an ingress that cannot stream it (UNIMPLEMENTED).
	ErrStreamOnly = errors.New("server-streaming method: served as a stream only")
)

// Defaults of [StreamBounds] (docs/operations.md, "Limits and timeouts").
const (
	DefaultStreamMessages = 1024
	DefaultStreamBytes    = 8 << 20
	DefaultStreamIdle     = 30 * time.Second
)

// StreamBounds bound one stream of a server-streaming route (a route's
// Stream, YAML stream).
type StreamBounds struct {
	// Messages and Bytes (YAML max_messages, max_bytes) bound the replies
	// figway holds for one stream: received and not yet sent to the
	// caller, in order or waiting for a missing one. Over either, the
	// stream fails with ErrStreamBuffer. If 0, 1024 messages and 8 MiB of
	// bodies.
	Messages int
	Bytes    int
	// Idle bounds the time between two messages of a stream, once its
	// first has come (before it, the deadline alone waits for the
	// worker). If 0, 30s.
	Idle time.Duration
}

// WithDefaults returns b with its zero fields set to their defaults.
func (b StreamBounds) WithDefaults() StreamBounds {
	if b.Messages <= 0 {
		b.Messages = DefaultStreamMessages
	}
	if b.Bytes <= 0 {
		b.Bytes = DefaultStreamBytes
	}
	if b.Idle <= 0 {
		b.Idle = DefaultStreamIdle
	}
	return b
}

// Streams reports whether r is a route of a server-streaming method: its
// calls are served with [Gateway.StreamRoute], not InvokeRoute.
func (r *Route) Streams() bool { return r.Desc != nil && r.Desc.IsStreamingServer() }

// StreamsToLegacy reports whether a call c of the streaming route r goes to
// legacy: pinned there by r's PinBy header, or left there by r's canary
// weight or its ramp's step (a stream's outcome does not count for the
// ramp's gates). It looks at c's headers only, so that the ingress can pass the
// call through untouched, before it reads the request.
func (g *Gateway) StreamsToLegacy(r *Route, c *Call) bool {
	switch pin := g.pin(r, c); {
	case pin == TargetLegacy:
		g.stats(r.Method).pinnedLegacy.Add(1)
		return true
	case pin == TargetBroker:
		g.stats(r.Method).pinnedBroker.Add(1)
	case r.Canary() && g.legacy != nil: // a weight, or a ramp's step
		if !g.toBroker(r, c) {
			g.stats(r.Method).canaryLegacy.Add(1)
			return true
		}
		g.stats(r.Method).canaryBroker.Add(1)
	}
	return false
}

// StreamRoute runs a call of the server-streaming route r through the
// broker path as viaBroker runs a unary one — the same preamble,
// [Gateway.enter]: bulkhead, deadline (over the whole stream), no-consumer
// check, breaker — and calls send with each message of the worker's
// stream, in order, transcoded to c.Accept; the first carries the reply's
// header metadata. It returns the end's Result
// (its trailer) when the worker ended the stream OK, or the call's error:
// a ReplyError for the worker's own status, a send error as it came.
func (g *Gateway) StreamRoute(ctx context.Context, r *Route, c *Call, send func(*Result) error) (*Result, error) {
	st, ok := g.pub.(Streamer)
	if !ok {
		return nil, fmt.Errorf("%s: %w: the publisher carries no streams", r.Method, ErrUnavailable)
	}
	ctx, p, err := g.enter(ctx, r, c, r.Timeout)
	if err != nil {
		return nil, err
	}
	defer p.end()
	p.req.Deadline = p.deadline
	var span trace.Span // the publish's PRODUCER span, over the whole stream
	if g.tracer != nil {
		_, span = g.produce(ctx, r, p.req, trace.SpanContext{})
	}
	res, n, err := g.relay(ctx, st, r, c, p.req, send)
	expired := errors.Is(resilience.Ended(ctx, p.start), context.DeadlineExceeded)
	switch {
	case n > 0 && expired && errors.Is(err, ErrStreamBroken):
		// Cut by the deadline, the route's or the caller's, while its
		// messages came: a timeout, as a gRPC caller sees it, not an
		// unavailable broker.
		err = fmt.Errorf("%s: %w after %d messages: %w", r.Method, ErrStreamBroken, n, context.DeadlineExceeded)
	case errors.Is(err, context.Canceled) && expired:
		err = fmt.Errorf("%s: no end before the caller's deadline: %w", r.Method, context.DeadlineExceeded)
	}
	p.done(streamOutcome(err, n, expired))
	if span != nil {
		g.streamed(ctx, span, r, p.req, n, err)
	}
	return res, err
}

// streamed ends the PRODUCER span of a stream that passed n messages to
// its caller and ended with err, and records the route, side and outcome
// on the ingress's SERVER span in ctx, as traceInvoke does for a call.
func (g *Gateway) streamed(ctx context.Context, span trace.Span, r *Route, req *wire.Request, n int, err error) {
	span.SetAttributes(AttrStreamMessages.Int(n))
	produced(span, req, err)
	server := trace.SpanFromContext(ctx)
	server.SetAttributes(AttrRoute.String(r.Method), AttrSide.String(string(TargetBroker)), AttrStreamMessages.Int(n))
	st := Status(err)
	if st != nil {
		server.SetStatus(otelcodes.Error, st.Message())
	}
	server.SetAttributes(AttrOutcome.String(st.Code().String()))
}

// streamOutcome is what the error of a stream that passed n messages to
// its caller says about its route: as a unary call's (breakerOutcome),
// except that a caller too slow for the stream, or gone while figway sent
// to it, is no failure of the route, and nor is a stream whose deadline
// (expired) cut it short while its messages came: a caller that watches
// for as long as its deadline, or a stream longer than the route's
// timeout, says nothing of the worker's health. A worker that dies
// mid-stream is caught by the idle bound, a failure.
func streamOutcome(err error, n int, expired bool) resilience.Outcome {
	if errors.Is(err, ErrStreamBuffer) || errors.As(err, new(errSend)) {
		return resilience.Ignored
	}
	if n > 0 && expired && (errors.Is(err, ErrStreamBroken) || errors.Is(err, context.DeadlineExceeded)) {
		return resilience.Ignored
	}
	return breakerOutcome(err)
}

// errSend marks an error of the ingress's send: the caller went away or
// its transport failed; the route is not to blame.
type errSend struct{ err error }

func (e errSend) Error() string { return "sending to the caller: " + e.err.Error() }
func (e errSend) Unwrap() error { return e.err }

// relay publishes req and passes the messages of its stream to send until
// the end; it returns how many it passed.
func (g *Gateway) relay(ctx context.Context, st Streamer, r *Route, c *Call, req *wire.Request, send func(*Result) error) (*Result, int, error) {
	rs, err := st.Stream(ctx, r.Exchange, r.RoutingKey, req, r.Stream.WithDefaults())
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", r.Method, err)
	}
	defer rs.Close()
	for n := 0; ; n++ {
		rep, end, err := rs.Next(ctx)
		if err != nil {
			return nil, n, fmt.Errorf("%s: %w", r.Method, err)
		}
		r.noteAnswered(time.Now())
		if end {
			if rep.Status != nil {
				return nil, n, &ReplyError{Method: r.Method, Status: rep.Status, Header: rep.Header, Trailer: rep.Trailer}
			}
			return &Result{Header: rep.Header, Trailer: rep.Trailer}, n, nil
		}
		res, err := result(r, c, rep)
		if err != nil {
			return nil, n, err
		}
		if err := send(res); err != nil {
			return nil, n, errSend{err}
		}
	}
}
