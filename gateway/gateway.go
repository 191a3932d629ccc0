package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/figway/figway/resilience"
	"github.com/figway/figway/wire"
)

// Call is one incoming call, as an ingress adapter hands it to the gateway.
type Call struct {
	Method      string // full method name, with or without a leading slash
	Body        []byte
	ContentType string // of Body: wire.ContentTypeProtobuf or wire.ContentTypeJSON
	Accept      string // content type the caller wants the reply in
	// Header returns the values of an incoming metadata key or HTTP header
	// (lower-case name). Only keys in the route's allow-list are asked for.
	Header func(key string) []string
	// Traceparent and Tracestate are the caller's W3C trace context, if any.
	Traceparent string
	Tracestate  string
	// Metadata is all the caller's metadata, passed to legacy when a canary,
	// fallback or shadow route sends the call there.
	Metadata metadata.MD
	// Async says that the call may become an operation (its route has
	// async): its deadline is the route's async.timeout instead of its
	// timeout. The caller passes a context without a deadline of its own.
	Async bool
}

// Result is the successful outcome of a call.
type Result struct {
	Body        []byte // in the content type the call asked for
	ContentType string
	// EventID is set for event routes: the message id of the published
	// event, which the caller gets as figway-event-id.
	EventID string
	// Header and Trailer are the reply metadata of the worker, or of
	// legacy when legacy answered the call.
	Header, Trailer metadata.MD
	// HTTPStatus is the 2xx status the worker chose for REST callers, or
	// 0 for the ingress's own (200, or 202 for an event).
	HTTPStatus int
}

// Options configures a Gateway.
type Options struct {
	Publisher Publisher
	Table     *Table
	// Source is the cloudEvents:source of published messages. If empty,
	// "figway" is used.
	Source string
	// Legacy, if set, takes the calls that canary, fallback and shadow
	// routes send to the legacy service.
	Legacy Legacy
	Logger *slog.Logger // if nil, slog.Default()
	// Tracer, if set, makes the spans of docs/operations.md, "Tracing":
	// attributes on the ingress's span in a call's context, a PRODUCER
	// span per publish. If nil, the gateway makes none and passes the
	// caller's trace context on as it comes.
	Tracer trace.Tracer
	// Ramps, if set, gives the weight of ramped routes and takes their
	// calls' outcomes. Without it a ramped route stays at its first step.
	Ramps Ramps
}

// Gateway dispatches calls through its route table to a Publisher.
type Gateway struct {
	pub     Publisher
	legacy  Legacy
	table   atomic.Pointer[Table]
	source  string
	log     *slog.Logger
	shadows chan *shadowJob
	// consumers counts the consumers of the routes' queues, if the
	// Publisher does.
	consumers ConsumerCounter
	// migration holds a *migrationStats per method, across reloads.
	migration sync.Map
	// edge holds an *edgeStats per method, across reloads.
	edge   sync.Map
	tracer trace.Tracer // nil: tracing off
	ramps  Ramps        // nil: ramped routes stay at their first step
}

// New returns a Gateway. It starts nothing.
func New(o Options) *Gateway {
	g := &Gateway{pub: o.Publisher, legacy: o.Legacy, source: o.Source, log: o.Logger,
		shadows: make(chan *shadowJob, shadowQueue), tracer: o.Tracer, ramps: o.Ramps}
	if g.source == "" {
		g.source = "figway"
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	g.consumers, _ = o.Publisher.(ConsumerCounter)
	g.SetTable(o.Table)
	return g
}

// Table returns the current route table.
func (g *Gateway) Table() *Table { return g.table.Load() }

// SetTable swaps the route table. Calls already running finish on the
// table they started with.
func (g *Gateway) SetTable(t *Table) {
	if t != nil {
		t.breakers.log.Store(g.log)
	}
	g.table.Store(t)
	if g.consumers != nil {
		g.consumers.WatchQueues(t.Queues())
	}
}

// Invoke runs one call through its route: bulkhead, deadline, breaker,
// publish. Errors map to gRPC statuses with [Status]. A call refused by the
// bulkhead, the breaker or a deadline already passed is answered at once
// and publishes nothing.
//
// Routes that migrate step by step send some calls to the Legacy port
// instead: a shadowing legacy route answers from legacy and mirrors the call
// to the broker off the caller's path; a canary route sends the share of
// calls its weight leaves to legacy; a fallback route sends to legacy a call
// the broker path refused without publishing it. A legacy route that does
// not shadow gets ErrNoRoute: its ingress proxies it untouched.
func (g *Gateway) Invoke(ctx context.Context, c *Call) (*Result, error) {
	r := g.Route(c.Method)
	if r == nil {
		return nil, fmt.Errorf("%s: %w", trimSlash(c.Method), ErrNoRoute)
	}
	return g.InvokeRoute(ctx, r, c)
}

// Route decides where a call of method goes, on the table serving now: the
// route the gateway serves it on, or nil when the call belongs to the legacy
// passthrough — no route, a legacy route that does not shadow, or a
// shadowing route without a Legacy port. An ingress asks once per call and
// hands the route to [Gateway.InvokeRoute], so that a reload in between
// cannot change the answer.
func (g *Gateway) Route(method string) *Route {
	if r := g.table.Load().Lookup(method); r != nil && g.Serves(r) {
		return r
	}
	return nil
}

// Serves reports whether the gateway takes the calls of route r, of any
// table: r publishes, and a legacy route that shadows has the Legacy port
// to answer from. The calls of another route belong to the legacy
// passthrough.
func (g *Gateway) Serves(r *Route) bool {
	return r.Publishes() && !(r.Shadow && r.To == TargetLegacy && g.legacy == nil)
}

// InvokeRoute is [Gateway.Invoke] on r, a route [Gateway.Route] returned.
func (g *Gateway) InvokeRoute(ctx context.Context, r *Route, c *Call) (*Result, error) {
	if r.Streams() {
		return nil, fmt.Errorf("%s: %w", r.Method, ErrStreamOnly)
	}
	if g.tracer != nil {
		return g.traceInvoke(ctx, r, c)
	}
	return g.invokeRoute(ctx, r, c)
}

func (g *Gateway) invokeRoute(ctx context.Context, r *Route, c *Call) (*Result, error) {
	if r.Shadow && r.To == TargetLegacy {
		return g.shadow(ctx, r, c)
	}
	switch pin := g.pin(r, c); {
	case pin == TargetLegacy:
		g.stats(r.Method).pinnedLegacy.Add(1)
		return g.viaLegacy(ctx, r, c)
	case pin == TargetBroker:
		g.stats(r.Method).pinnedBroker.Add(1)
	case r.Canary() && g.legacy != nil:
		if !g.toBroker(r, c) {
			g.stats(r.Method).canaryLegacy.Add(1)
			if r.Ramp != nil {
				return g.rampLegacy(ctx, r, c)
			}
			return g.viaLegacy(ctx, r, c)
		}
		g.stats(r.Method).canaryBroker.Add(1)
	}
	var res *Result
	var err error
	if r.Ramp != nil {
		res, err = g.rampBroker(ctx, r, c)
	} else {
		res, err = g.viaBroker(ctx, r, c)
	}
	if r.Fallback == TargetLegacy && g.legacy != nil {
		if err != nil && fallsBack(err) {
			g.noteFallback(r, true, err)
			g.stats(r.Method).fallbacks.Add(1)
			return g.viaLegacy(ctx, r, c)
		}
		if err == nil {
			g.noteFallback(r, false, nil)
		}
	}
	return res, err
}

// viaBroker runs a call through the broker path of its route: the
// preamble of [Gateway.enter] (bulkhead, deadline, message, no-consumer
// check, breaker), then publish and wait.
func (g *Gateway) viaBroker(ctx context.Context, r *Route, c *Call) (*Result, error) {
	g.traceSide(ctx, TargetBroker)
	timeout := r.Timeout
	if c.Async && r.Async != nil {
		timeout = r.Async.Timeout
	}
	ctx, p, err := g.enter(ctx, r, c, timeout)
	if err != nil {
		return nil, err
	}
	defer p.end()
	var span trace.Span // the publish's PRODUCER span; the events go on ctx's
	if g.tracer != nil {
		_, span = g.produce(ctx, r, p.req, trace.SpanContext{})
	}
	res, err := g.dispatch(ctx, r, c, p.req, p.deadline)
	if errors.Is(err, context.Canceled) && errors.Is(resilience.Ended(ctx, p.start), context.DeadlineExceeded) {
		// The caller's own deadline passed: a gRPC client resets its
		// stream then, which cancels the call (resilience.Ended).
		err = fmt.Errorf("%s: no answer before the caller's deadline: %w", r.Method, context.DeadlineExceeded)
	}
	p.done(breakerOutcome(err))
	if span != nil {
		produced(span, p.req, err)
	}
	return res, err
}

// passage is a call that [Gateway.enter] let onto the broker path: its
// message and deadline, and what end gives back.
type passage struct {
	r        *Route
	req      *wire.Request
	start    time.Time // when the call entered
	deadline time.Time // the effective deadline; zero if none
	// done is the breaker's report. Every admitted call reports exactly
	// once, or a half-open breaker stays stuck; done ignores all but the
	// first report, so end's only counts if the call's path panicked.
	done   func(resilience.Outcome)
	cancel context.CancelFunc // the deadline's context's; nil if none
}

// end gives back what enter took, in the reverse order: the breaker's
// report (see done), the deadline's context, the bulkhead's slot.
func (p *passage) end() {
	if p.done != nil {
		p.done(resilience.Ignored)
	}
	if p.cancel != nil {
		p.cancel()
	}
	p.r.bulkhead.Release()
}

// enter is the preamble of the broker path, unary (viaBroker) or
// streaming (StreamRoute), for a call c on r: the bulkhead; the effective
// deadline, the shorter of ctx's and timeout, which must not have passed;
// the message; the no-consumer check; the breaker, asked last. It returns
// ctx bounded by the deadline and the passage, whose end the caller
// defers; when it fails, it has given back what it took and nothing is
// published.
func (g *Gateway) enter(ctx context.Context, r *Route, c *Call, timeout time.Duration) (_ context.Context, p passage, err error) {
	if !r.bulkhead.Acquire() {
		return ctx, p, fmt.Errorf("%s: %w (max_in_flight %d)", r.Method, ErrOverloaded, r.bulkhead.Limit())
	}
	p.r, p.start = r, time.Now()
	defer func() {
		if err != nil {
			p.end()
		}
	}()
	deadline, ok := resilience.Deadline(ctx, p.start, timeout)
	if ok {
		if !deadline.After(p.start) {
			return ctx, p, fmt.Errorf("%s: deadline passed before publishing: %w", r.Method, context.DeadlineExceeded)
		}
		ctx, p.cancel = context.WithDeadline(ctx, deadline)
	}
	p.deadline = deadline
	if p.req, err = g.request(r, c); err != nil {
		return ctx, p, err
	}
	// An rpc call that nobody would answer is not published, and the
	// breaker is not asked: the queue's state is looked at again at every
	// call, so the first call after a worker returns is served, where an
	// open breaker would refuse calls for open_for more. On a route that
	// falls back, the call goes to legacy.
	if err = g.idle(ctx, r); err != nil {
		return ctx, p, err
	}
	// The breaker is asked last, once nothing but the broker can fail the
	// call: a malformed request or a passed deadline must not take a
	// half-open breaker's probe.
	done, err := r.breaker.Allow()
	if err != nil {
		return ctx, p, breakerError(r, err)
	}
	p.done = done
	return ctx, p, nil
}

// request returns the message of call c on r. (The functions of a call's
// path are kept small, cold and bulky parts in functions of their own: a
// call's goroutine is deepest while the message is written to RabbitMQ,
// and every frame on the way counts; docs/performance.md, "Held calls and
// goroutine stacks".)
func (g *Gateway) request(r *Route, c *Call) (*wire.Request, error) {
	body, err := transcode(c.Body, c.ContentType, r.contentType, r.Input, r.types)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", r.Method, ErrBadRequest, err)
	}
	md, err := forward(r.Forward, c.Header, r.ForwardLimits)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Method, err)
	}
	req := &wire.Request{
		Method:      r.Method,
		Body:        body,
		ContentType: r.contentType,
		MessageID:   wire.NewID(),
		Source:      g.source,
		CloudEvents: r.cloudEvents(),
		Metadata:    md,
	}
	req.Traceparent, req.Tracestate = traceContext(c.Traceparent, c.Tracestate)
	return req, nil
}

// dispatch publishes req on r and waits for its answer: the broker's
// confirm for an event, the reply for an rpc call. An rpc call that failed
// before reaching the broker, or — on a retry: idempotent route — whose
// channel died after it was published, is published once more, with the
// same message id, if its deadline allows.
func (g *Gateway) dispatch(ctx context.Context, r *Route, c *Call, req *wire.Request, deadline time.Time) (*Result, error) {
	if r.Pattern == PatternEvent {
		return g.event(ctx, r, c, req)
	}
	req.Deadline = deadline
	rep, err := g.pub.Call(ctx, r.Exchange, r.RoutingKey, req)
	if err != nil && retryable(r, err) && ctx.Err() == nil {
		rep, err = g.retry(ctx, r, req, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Method, err)
	}
	r.noteAnswered(time.Now())
	return result(r, c, rep)
}

// event publishes the event req on r and waits for the broker's confirm.
func (g *Gateway) event(ctx context.Context, r *Route, c *Call, req *wire.Request) (*Result, error) {
	req.Persistent = true
	if err := g.pub.Publish(ctx, r.Exchange, r.RoutingKey, req); err != nil {
		return nil, fmt.Errorf("%s: %w", r.Method, err)
	}
	return &Result{Body: emptyReply(c.Accept), ContentType: c.Accept, EventID: req.MessageID}, nil
}

// retry publishes the rpc call req, whose first try failed with err, again
// while retryDelay allows and the deadline has not passed.
func (g *Gateway) retry(ctx context.Context, r *Route, req *wire.Request, err error) (*Reply, error) {
	var rep *Reply
	for i := 0; err != nil && retryable(r, err) && ctx.Err() == nil; i++ {
		delay, ok := retryDelay(r, err, i)
		if !ok {
			break
		}
		if delay > 0 {
			select { // let the client notice the loss, or the broker elect a leader
			case <-ctx.Done():
			case <-time.After(delay):
			}
		}
		g.awaitReconnect(ctx, r)
		if ctx.Err() != nil {
			break
		}
		g.log.DebugContext(ctx, "publishing the call again", "route", r.Method, "correlation_id", req.CorrelationID, "err", err)
		rep, err = g.pub.Call(ctx, r.Exchange, r.RoutingKey, req)
	}
	return rep, err
}

// result returns the answer to c of the reply rep on r.
func result(r *Route, c *Call, rep *Reply) (*Result, error) {
	if rep.Status != nil {
		return nil, &ReplyError{Method: r.Method, Status: rep.Status, Header: rep.Header, Trailer: rep.Trailer}
	}
	out, err := replyBody(rep, c.Accept, r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", r.Method, ErrBadReply, err)
	}
	return &Result{Body: out, ContentType: c.Accept, Header: rep.Header, Trailer: rep.Trailer, HTTPStatus: rep.HTTPStatus}, nil
}

// retryWait bounds how long a retry: idempotent call waits for the broker
// connection to come back before publishing again. Reconnecting to another
// node of a cluster takes about 0.1 s on an idle machine and has taken 2 s
// on a loaded one (docs/operations.md, "Running against a cluster"); a
// longer outage fails the call with UNAVAILABLE after this wait rather than
// at its deadline.
const retryWait = 5 * time.Second

// redialWait bounds how long a call that was never published waits, on a
// route without retry: idempotent, while figway dials the next node after
// losing its connection: a rolling restart of a cluster stops one node at
// a time, and its calls need not fail for the moment the next dial takes.
// Once every node has failed in turn, figway backs off and such calls fail
// at once.
const redialWait = time.Second

// awaitReconnect waits until the publisher is connected again, never past
// ctx: on a retry: idempotent route at most retryWait; on others at most
// redialWait, and only while the publisher is redialing (nothing is known
// to be down yet). Otherwise it returns at once: callers learn of an
// outage without delay.
func (g *Gateway) awaitReconnect(ctx context.Context, r *Route) {
	rc, ok := g.pub.(Reconnector)
	if !ok {
		return
	}
	wait := retryWait
	if r.Retry != RetryIdempotent {
		if !rc.Redialing() {
			return
		}
		wait = redialWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	_ = rc.AwaitConnected(ctx) // on timeout, the retry fails as the first attempt did
}

// forward returns the allow-listed headers of a call, as they go on its
// message as figway-md-<key>, or an error wrapping ErrHeadersTooLarge when
// one value or all of them together are over lim: a header larger than the
// broker's frame_max would close the connection of every call in flight.
func forward(keys []string, header func(string) []string, lim HeaderLimits) (map[string][]string, error) {
	if len(keys) == 0 || header == nil {
		return nil, nil
	}
	var md map[string][]string
	total := 0
	for _, k := range keys {
		vs := header(k)
		if len(vs) == 0 {
			continue
		}
		// As encoded in the headers table: the name, and each value as a
		// long string (5 bytes of type and length), in an array if many.
		total += 1 + len(wire.HeaderMetadataPrefix) + len(k) + 5
		for _, v := range vs {
			if len(v) > lim.Value {
				return nil, fmt.Errorf("%w: header %s has a value of %d bytes, over the limit of %d (server.max_forwarded_value_bytes)",
					ErrHeadersTooLarge, k, len(v), lim.Value)
			}
			total += 5 + len(v)
		}
		if total > lim.Total {
			return nil, fmt.Errorf("%w: forwarded headers of over %d bytes, over the limit of %d (server.max_forwarded_bytes)",
				ErrHeadersTooLarge, total, lim.Total)
		}
		if md == nil {
			md = make(map[string][]string, len(keys))
		}
		md[k] = vs
	}
	return md, nil
}

// emptyReply is the answer body of an event route: the output message with
// no field set, which is zero bytes in protobuf and {} in JSON.
func emptyReply(contentType string) []byte {
	if contentType == wire.ContentTypeJSON {
		return []byte("{}")
	}
	return nil
}

func trimSlash(m string) string {
	if len(m) > 0 && m[0] == '/' {
		return m[1:]
	}
	return m
}
