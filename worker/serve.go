package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// outcome is what processing one request came to: a reply (body, or a
// non-OK status with no body), or nothing at all for an expired request.
type outcome struct {
	body    []byte
	st      *status.Status // nil is OK
	expired bool
	// skipped: a shadow copy that the method's handler does not run
	// (SkipShadows).
	skipped bool
	// poison: a request delivered more than Config.MaxDeliveries times,
	// not run; st says so. It is rejected, not acked.
	poison bool
	meta   wire.ReplyMeta
}

// process decodes d, runs its handler under ctx and encodes the response.
// It does no I/O: [session.serve] settles the delivery with its outcome.
func (w *Worker) process(ctx context.Context, d *amqp.Delivery) outcome {
	deadline, hasDeadline, err := wire.Deadline(d.Headers)
	if err != nil {
		return outcome{st: status.New(codes.InvalidArgument, err.Error())}
	}
	// figway has answered DEADLINE_EXCEEDED already; nobody reads a
	// reply. The broker's per-message TTL (expiration) catches most of
	// these in the queue; this catches those that expire in our prefetch
	// buffer or while waiting for a handler slot.
	if hasDeadline && !time.Now().Before(deadline) {
		return outcome{expired: true}
	}
	if n, yes := poisoned(d, w.cfg.MaxDeliveries); yes {
		return outcome{poison: true, st: status.Newf(codes.Internal,
			"%s: delivered %d times before, and never settled (the worker died handling it?); not run again", wire.PoisonRefusal, n)}
	}
	h, ok := w.handlers[strings.TrimPrefix(d.Type, "/")]
	if !ok {
		return outcome{st: status.Newf(codes.Unimplemented, "worker: unknown method %q", d.Type)}
	}
	c, ok := codecFor(d.ContentType)
	if !ok {
		return outcome{st: status.Newf(codes.InvalidArgument,
			"worker: content type %q is neither %s nor %s", d.ContentType, wire.ContentTypeProtobuf, wire.ContentTypeJSON)}
	}
	hctx := w.handlerContext(ctx, d, deadline, hasDeadline)
	defer hctx.release()
	ctx, req := hctx, &hctx.request
	body, err := w.call(ctx, h, c, d)
	meta := req.reply.meta()
	if errors.Is(err, errShadowSkipped) {
		return outcome{st: statusOf(err), skipped: true}
	}
	if err != nil {
		meta.HTTPStatus = 0 // a success code; errors map their status
		return outcome{st: statusOf(err), meta: meta}
	}
	return outcome{body: body, meta: meta}
}

// call runs h, turning a panic into errPanic: one request's bug must not
// take down the worker and every other request in flight.
func (w *Worker) call(ctx context.Context, h handler, c codec, d *amqp.Delivery) (body []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			w.stats.panics.Add(1)
			w.log.LogAttrs(ctx, slog.LevelError, "handler panicked",
				slog.String("method", d.Type), slog.String("correlation_id", d.CorrelationId),
				slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
			body, err = nil, errPanic
		}
	}()
	return h(ctx, c, d.Body)
}

// serve handles one delivery of s's channel, from decoding to settling
// it. ctx is the session's: it ends when the channel is lost or when Run
// gives up waiting at shutdown, and then the delivery is left unsettled
// for the broker to redeliver.
//
// At-least-once: a request is acked only after its reply is published, on
// the channel that delivered it. If the channel dies in between, the broker
// redelivers the request and it runs again; figway drops the duplicate
// reply. Handlers with side effects should be idempotent; [EventID] is
// stable across redeliveries.
func (s *session) serve(ctx context.Context, d *amqp.Delivery) {
	w := s.w
	if h, ok := w.streams[strings.TrimPrefix(d.Type, "/")]; ok && d.ReplyTo != "" {
		s.serveStream(ctx, d, h)
		return
	}
	w.stats.received.Add(1)
	if w.tracer != nil {
		s.serveTraced(ctx, d)
		return
	}
	s.settleOutcome(ctx, d, w.process(ctx, d), nil)
}

// serveTraced is serve under the request's CONSUMER span.
func (s *session) serveTraced(ctx context.Context, d *amqp.Delivery) {
	ctx, span := s.w.consumerSpan(ctx, d)
	defer span.End()
	o := s.w.process(ctx, d)
	traced(span, &o)
	s.settleOutcome(ctx, d, o, span)
}

// settleOutcome replies to d and settles it as o says, recording what it
// did on span, if not nil.
func (s *session) settleOutcome(ctx context.Context, d *amqp.Delivery, o outcome, span trace.Span) {
	w := s.w
	if ctx.Err() != nil {
		event(span, eventLeft)
		w.log.LogAttrs(ctx, slog.LevelDebug, "channel gone: request left for redelivery",
			slog.String("method", d.Type), slog.String("correlation_id", d.CorrelationId))
		return
	}
	if o.poison {
		w.stats.poisoned.Add(1)
		w.log.LogAttrs(ctx, slog.LevelError, "poison request: not run, rejected",
			slog.String("method", d.Type), slog.String("correlation_id", d.CorrelationId),
			slog.String("event_id", d.MessageId), slog.String("error", o.st.Message()))
	}
	switch {
	case o.expired:
		w.stats.expired.Add(1)
		w.log.LogAttrs(ctx, slog.LevelDebug, "request expired before it ran: dropped",
			slog.String("method", d.Type), slog.String("correlation_id", d.CorrelationId))
		event(span, eventExpired)
		if s.settle(d, func() error { return s.finish(d) }) {
			event(span, eventAcked)
		}
	case d.ReplyTo != "":
		if s.reply(d, o) {
			event(span, eventReplied)
			event(span, settledEvent(o))
		}
	case o.skipped:
		// A shadow event the method does not run: done, as if handled.
		w.stats.shadowsSkipped.Add(1)
		if s.settle(d, func() error { return d.Ack(false) }) {
			event(span, eventAcked)
		}
	case o.st != nil:
		// An event: nobody waits for an answer, so the failure goes to the
		// queue's dead-letter exchange, if it has one, or is dropped.
		w.stats.rejected.Add(1)
		w.log.LogAttrs(ctx, slog.LevelWarn, "event failed: rejected",
			slog.String("method", d.Type), slog.String("event_id", d.MessageId),
			slog.String("code", o.st.Code().String()), slog.String("error", o.st.Message()))
		s.settle(d, func() error { return s.acks.reject(d.DeliveryTag) })
	default:
		if s.settle(d, func() error { return s.finish(d) }) {
			w.stats.events.Add(1)
			event(span, eventAcked)
		}
	}
}

// settledEvent names how a request answered with o was settled.
func settledEvent(o outcome) string {
	if o.poison {
		return eventRejected
	}
	return eventAcked
}

// event records name on span, if not nil.
func event(span trace.Span, name string) {
	if span != nil {
		span.AddEvent(name)
	}
}

// reply publishes o as the reply to d, then acks d (gathered: see acks).
// It reports whether it did both.
func (s *session) reply(d *amqp.Delivery, o outcome) bool {
	w := s.w
	if o.skipped {
		w.stats.shadowsSkipped.Add(1)
	}
	p := s.replyMessage(d, o)
	// A poison request is rejected rather than acked, so that a queue
	// with a dead-letter exchange keeps it for someone to look at.
	settled := s.finish
	if o.poison {
		settled = func(d *amqp.Delivery) error { return s.acks.reject(d.DeliveryTag) }
	}
	if w.gone.has(d.ReplyTo) {
		// A reply to this address crashed the channel before: its caller's
		// channel is gone, and so is any use in replying.
		w.stats.repliesDropped.Add(1)
		w.log.LogAttrs(context.Background(), slog.LevelWarn, "caller's reply-to is gone: request acked without its reply",
			slog.String("method", d.Type), slog.String("correlation_id", d.CorrelationId))
		s.settle(d, func() error { return settled(d) })
		return false
	}
	if d.Redelivered && strings.HasPrefix(d.ReplyTo, wire.DirectReplyTo+".") {
		ok := s.settle(d, func() error { return s.replyAlone(d, &p, settled) })
		if ok {
			w.stats.replied.Add(1)
		}
		return ok
	}
	ok := s.settle(d, func() error {
		// The default exchange routes to the queue named by reply_to,
		// including amq.rabbitmq.reply-to.* names. No confirm mode: the
		// ack below travels on the same channel, so the broker has taken
		// the reply before it sees the ack, and an unroutable reply (the
		// caller's reply queue is gone) has nobody to go to anyway.
		if err := s.ch.Publish("", d.ReplyTo, false, false, p); err != nil {
			return fmt.Errorf("publish reply: %w", err)
		}
		return settled(d)
	})
	if ok {
		w.stats.replied.Add(1)
	}
	return ok
}

// replyMessage is the reply to d that carries o: its status and reply
// metadata as headers, trimmed to the connection's frame_max. An error
// status is logged, at warning level for the codes of a worker's bug.
func (s *session) replyMessage(d *amqp.Delivery, o outcome) amqp.Publishing {
	w := s.w
	h, err := wire.SetReplyMetadata(nil, o.meta)
	if err != nil { // SetHeader and SetTrailer checked the keys already
		h, o.st, o.body = nil, status.New(codes.Internal, "worker: "+err.Error()), nil
	}
	p := amqp.Publishing{
		Headers:       wire.SetStatus(h, o.st),
		ContentType:   d.ContentType,
		DeliveryMode:  wire.Transient,
		CorrelationId: d.CorrelationId,
		AppId:         AppID,
		Body:          o.body,
	}
	if o.st != nil {
		p.Body = nil
		level := slog.LevelDebug
		switch o.st.Code() {
		case codes.Unknown, codes.Internal, codes.DataLoss:
			level = slog.LevelWarn
		}
		w.log.LogAttrs(context.Background(), level, "replying with an error",
			slog.String("method", d.Type), slog.String("correlation_id", d.CorrelationId),
			slog.String("code", o.st.Code().String()), slog.String("error", o.st.Message()))
	}
	// Every header counts, the handler's reply metadata included: a
	// content header over frame_max would make the broker close this
	// connection, and redeliver every request in flight on it.
	if amqpwire.FitReply(&p, s.frameMax) {
		w.stats.trimmed.Add(1)
		w.log.LogAttrs(context.Background(), slog.LevelWarn, "reply headers over the broker's frame_max: trimmed",
			slog.String("method", d.Type), slog.String("correlation_id", d.CorrelationId), slog.Int("frame_max", s.frameMax))
	}
	return p
}

// settle runs f, which uses s's channel, under s.mu. It reports whether f
// succeeded; a failure means the channel is gone and the broker will
// redeliver d.
func (s *session) settle(d *amqp.Delivery, f func() error) bool {
	s.mu.Lock()
	err := f()
	s.mu.Unlock()
	if err != nil {
		s.w.log.LogAttrs(context.Background(), slog.LevelWarn, "request not settled; the broker will redeliver it",
			slog.String("method", d.Type), slog.String("correlation_id", d.CorrelationId),
			slog.String("error", err.Error()))
		return false
	}
	return true
}

// replyAlone publishes the reply p to a redelivered request d with no
// other frame of the channel in flight, under s.mu, and learns whether the
// broker took it: RabbitMQ 3.10 crashes a channel that replies to a
// direct reply-to address whose node has died ({case_clause,error} in
// rabbit_channel:deliver_reply/2), closing the whole connection, and the
// request, redelivered, would crash the next connection the same way
// until it expires. A synchronous basic.qos (the prefetch the channel has
// already, so nothing changes) before the publish makes sure the frames
// before it were taken; one after it answers only if the reply did not
// crash the channel. If it did, the address is remembered as gone, and
// the request is acked without a reply when it comes again. settled
// settles d once the reply is out.
func (s *session) replyAlone(d *amqp.Delivery, p *amqp.Publishing, settled func(*amqp.Delivery) error) error {
	prefetch := s.prefetch
	const prefetchSize, global = 0, false
	if err := s.ch.Qos(prefetch, prefetchSize, global); err != nil {
		return fmt.Errorf("before the reply: %w", err)
	}
	if err := s.ch.Publish("", d.ReplyTo, false, false, *p); err != nil {
		return fmt.Errorf("publish reply: %w", err)
	}
	if err := s.ch.Qos(prefetch, prefetchSize, global); err != nil {
		s.w.gone.add(d.ReplyTo)
		return fmt.Errorf("the broker closed the channel on the reply (the caller's channel is gone): %w", err)
	}
	return settled(d)
}

// goneReplyTos are the direct reply-to addresses a reply to which made the
// broker close the worker's connection, each kept for goneFor.
type goneReplyTos struct {
	mu sync.Mutex
	m  map[string]time.Time // address → when it was found gone
}

// goneFor is how long an address is remembered: longer than any request
// to it waits in a queue (figway's deadlines, and the TTL it sets, are
// shorter).
const goneFor = 10 * time.Minute

func (g *goneReplyTos) add(addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = map[string]time.Time{}
	}
	now := time.Now()
	for a, at := range g.m {
		if now.Sub(at) > goneFor {
			delete(g.m, a)
		}
	}
	g.m[addr] = now
}

func (g *goneReplyTos) has(addr string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	at, ok := g.m[addr]
	return ok && time.Since(at) <= goneFor
}
