package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/figway/figway/wire"
)

// streamHandler decodes a request body with c and runs the typed streaming
// handler, which hands each encoded response to send.
type streamHandler func(ctx context.Context, c codec, body []byte, send func([]byte) error) error

// HandleStream registers h for the server-streaming method method (see
// [Handle] for the name and the types). h sends the messages of its stream
// with send, in order, and returns nil to end the stream OK or an error to
// end it with that error's status; it may set the stream's header (before
// its first send) and trailer as a unary handler does ([SetHeader],
// [SetTrailer]). Each send publishes one message at once
// (docs/wire-protocol.md, "Streaming replies"); send fails once ctx is
// done — the call's deadline passed or its caller went away — and h
// should return then.
//
// The request is acknowledged once the stream has ended: a worker that
// dies mid-stream leaves it for redelivery, and the worker that runs it
// again sends the stream from its first message; figway drops the
// messages it had already received.
//
// HandleStream must be called before [Worker.Run]; it panics as Handle
// does.
func HandleStream[Req, Resp proto.Message](w *Worker, method string, h func(ctx context.Context, req Req, send func(Resp) error) error) {
	method = checkHandle[Req](w, method, "HandleStream")
	typ := (*new(Req)).ProtoReflect().Type()
	if w.streams == nil {
		w.streams = make(map[string]streamHandler)
	}
	w.streams[method] = func(ctx context.Context, c codec, body []byte, send func([]byte) error) error {
		req := newMessage[Req](typ)
		if err := c.unmarshal(body, req); err != nil {
			return &decodeError{err: err}
		}
		return h(ctx, req, func(resp Resp) error {
			b, err := c.marshal(resp)
			if err != nil {
				return &encodeError{err: err}
			}
			return send(b)
		})
	}
}

// checkHandle panics unless a handler for method may be registered on w
// now, by the function fn; it returns method without a leading "/".
func checkHandle[Req proto.Message](w *Worker, method, fn string) string {
	method = strings.TrimPrefix(method, "/")
	if w.running.Load() {
		panic("worker: " + fn + "(" + method + ") called after Run")
	}
	if svc, m, ok := strings.Cut(method, "/"); !ok || svc == "" || m == "" || strings.Contains(m, "/") {
		panic("worker: " + fn + ": method " + method + " is not of the form package.Service/Method")
	}
	_, dup := w.handlers[method]
	_, dupStream := w.streams[method]
	if dup || dupStream {
		panic("worker: " + fn + ": method " + method + " already has a handler")
	}
	var zero Req
	if any(zero) == nil {
		panic("worker: " + fn + ": Req must be a concrete message type, not an interface")
	}
	return method
}

// serveStream runs the streaming handler h for d: each message it sends is
// published to d's reply_to as it comes, numbered by figway-seq; the end,
// with the handler's status and trailer, follows, and then d is acked.
func (s *session) serveStream(ctx context.Context, d *amqp.Delivery, h streamHandler) {
	w := s.w
	w.stats.received.Add(1)
	if w.tracer != nil {
		var span trace.Span
		ctx, span = w.consumerSpan(ctx, d)
		defer span.End()
	}
	deadline, hasDeadline, err := wire.Deadline(d.Headers)
	if err == nil && hasDeadline && !time.Now().Before(deadline) {
		w.stats.expired.Add(1)
		s.settle(d, func() error { return s.finish(d) })
		return
	}
	c, ok := codecFor(d.ContentType)
	switch {
	case err != nil:
		err = status.New(codes.InvalidArgument, err.Error()).Err()
	case !ok:
		err = status.Errorf(codes.InvalidArgument, "worker: content type %q is neither %s nor %s",
			d.ContentType, wire.ContentTypeProtobuf, wire.ContentTypeJSON)
	default:
		hctx := w.handlerContext(ctx, d, deadline, hasDeadline)
		defer hctx.release()
		req := &hctx.request
		st := &streamSender{s: s, d: d, ctx: hctx, req: req}
		err = w.runStream(hctx, h, c, d, st.send)
		s.endStream(ctx, d, st, err)
		streamTraced(ctx, st.seq, err)
		return
	}
	s.endStream(ctx, d, &streamSender{s: s, d: d, ctx: ctx, req: &request{}}, err)
	streamTraced(ctx, 0, err)
}

// runStream runs h, turning a panic into errPanic, as call does.
func (w *Worker) runStream(ctx context.Context, h streamHandler, c codec, d *amqp.Delivery, send func([]byte) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			w.stats.panics.Add(1)
			w.log.LogAttrs(ctx, slog.LevelError, "handler panicked",
				slog.String("method", d.Type), slog.String("correlation_id", d.CorrelationId),
				slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
			err = errPanic
		}
	}()
	return h(ctx, c, d.Body, send)
}

// streamSender publishes the messages of one stream.
type streamSender struct {
	s   *session
	d   *amqp.Delivery
	ctx context.Context // the handler's: sends fail once it is done
	req *request
	seq int64 // the next message's figway-seq
}

// errStreamGone is the error of a send after the handler's context ended.
var errStreamGone = errors.New("worker: the stream's call has ended")

// send publishes body as the next message of the stream.
func (st *streamSender) send(body []byte) error {
	if err := st.ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", errStreamGone, err)
	}
	var h amqp.Table
	if st.seq == 0 {
		// The header metadata the handler set before its first send.
		st.req.reply.mu.Lock()
		m := wire.ReplyMeta{Header: st.req.reply.m.Header}
		st.req.reply.mu.Unlock()
		var err error
		if h, err = wire.SetReplyMetadata(nil, m); err != nil {
			return err
		}
	}
	p := st.publishing(wire.SetStreamPart(h, st.seq, false), body)
	st.s.mu.Lock()
	err := st.s.ch.Publish("", st.d.ReplyTo, false, false, p)
	st.s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("worker: publish a stream message: %w", err)
	}
	st.seq++
	return nil
}

func (st *streamSender) publishing(h amqp.Table, body []byte) amqp.Publishing {
	return amqp.Publishing{
		Headers:       h,
		ContentType:   st.d.ContentType,
		DeliveryMode:  wire.Transient,
		CorrelationId: st.d.CorrelationId,
		AppId:         AppID,
		Body:          body,
	}
}

// endStream publishes the end of st's stream, with the status of err and
// the handler's trailer, and acks d. When ctx (the session's) is done,
// the channel is gone: d is left for redelivery.
func (s *session) endStream(ctx context.Context, d *amqp.Delivery, st *streamSender, err error) {
	if ctx.Err() != nil {
		return
	}
	st.req.reply.mu.Lock()
	m := wire.ReplyMeta{Trailer: st.req.reply.m.Trailer}
	if st.seq == 0 {
		m.Header = st.req.reply.m.Header
	}
	st.req.reply.mu.Unlock()
	var sst *status.Status
	if err != nil {
		sst = statusOf(err)
	}
	h, merr := wire.SetReplyMetadata(nil, m)
	if merr != nil {
		h, sst = nil, status.New(codes.Internal, "worker: "+merr.Error())
	}
	p := st.publishing(wire.SetStreamPart(wire.SetStatus(h, sst), st.seq, true), nil)
	if s.settle(d, func() error {
		if err := s.ch.Publish("", d.ReplyTo, false, false, p); err != nil {
			return fmt.Errorf("publish the end of a stream: %w", err)
		}
		return s.finish(d)
	}) {
		s.w.stats.replied.Add(1)
	}
}
