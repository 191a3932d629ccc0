package amqp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/operations"
	"github.com/figway/figway/wire"
)

var _ operations.Log = (*OperationLog)(nil)

// LogConfig configures an OperationLog.
type LogConfig struct {
	// Stream is the name of the stream queue. It is required.
	Stream string
	// Retention is how long the stream keeps records (x-max-age), and how
	// far back a starting figway reads it: the longest an operation lives,
	// pending and then done. It is required.
	Retention time.Duration
}

// OperationLog keeps operations' records on a RabbitMQ stream, on a
// connection of its own. It implements operations.Log. Every figway sharing
// the stream appends its records there and reads all of them back into its
// Store, from Retention ago at each connect and then as they come
// (docs/wire-protocol.md, "Operations stream").
type OperationLog struct {
	c     *Client
	cfg   LogConfig
	pub   atomic.Pointer[logPublisher]
	store *operations.Store // set by Run
	// syncs holds the markers that Sync calls wait to read back, by id.
	syncs sync.Map // string → chan struct{}

	reconnects atomic.Uint64
	bad        atomic.Uint64
}

// logPublisher is one connection's confirm-mode channel for appending.
// amqp091-go channels are not safe for concurrent use: mu serializes the
// publishes; confirms are awaited outside of it.
type logPublisher struct {
	mu sync.Mutex
	ch *amqp.Channel
}

// NewOperationLog returns an OperationLog that connects with c's settings.
// It connects nothing: Run does.
func (c *Client) NewOperationLog(cfg LogConfig) *OperationLog {
	return &OperationLog{c: c, cfg: cfg}
}

// Record types on the stream (the AMQP type property).
const (
	recordStarted = "figway.operation.started"
	recordDone    = "figway.operation.done"
	recordDeleted = "figway.operation.deleted"
	// recordMarker is appended by each figway at connect: reading its own
	// marker back says the stream has been read up to then.
	recordMarker = "figway.operation.marker"
)

// Headers of operation records.
const (
	headerOpMethod   = "figway-method"
	headerOpOwnerBy  = "figway-owner-by"
	headerOpOwner    = "figway-owner"
	headerOpStart    = "figway-start"
	headerOpDeadline = "figway-deadline"
	headerOpKeep     = "figway-keep-ms"
	headerOpAt       = "figway-at"
	headerHTTPStatus = "figway-http-status"
	// headerReplyMetadata holds a done operation's reply metadata, JSON
	// (replyMetadata): RabbitMQ 3.10 streams drop array-valued headers, so
	// the reply's figway-rmd-*/rmt-* arrays cannot be kept as they came.
	headerReplyMetadata = "figway-reply-metadata"
)

// replyMetadata is the JSON of header figway-reply-metadata: the reply's
// header and trailer metadata, values as bytes (base64 in JSON), so "-bin"
// values keep every byte.
type replyMetadata struct {
	Header  map[string][][]byte `json:"header,omitempty"`
	Trailer map[string][][]byte `json:"trailer,omitempty"`
}

func mdBytes(md map[string][]string) map[string][][]byte {
	if len(md) == 0 {
		return nil
	}
	out := make(map[string][][]byte, len(md))
	for k, vs := range md {
		for _, v := range vs {
			out[k] = append(out[k], []byte(v))
		}
	}
	return out
}

func mdStrings(md map[string][][]byte) map[string][]string {
	if len(md) == 0 {
		return nil
	}
	out := make(map[string][]string, len(md))
	for k, vs := range md {
		for _, v := range vs {
			out[k] = append(out[k], string(v))
		}
	}
	return out
}

// Run connects, declares the stream, reads it into store and keeps
// reading, reconnecting when the connection is lost, until ctx is
// cancelled. store learns when the stream has been read up to the time of
// connecting.
func (l *OperationLog) Run(ctx context.Context, store *operations.Store) error {
	l.store = store
	return l.c.supervise(ctx, l.c.cfg.Name+" operations", &l.reconnects, new(atomic.Bool), l.serve)
}

// Append publishes r on the stream and waits for the broker's confirm.
func (l *OperationLog) Append(ctx context.Context, r *operations.Record) error {
	p := l.pub.Load()
	if p == nil {
		return fmt.Errorf("%w: not connected to RabbitMQ", gateway.ErrUnavailable)
	}
	msg := encodeRecord(r)
	p.mu.Lock()
	dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, "", l.cfg.Stream, false, false, msg)
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: append to %s: %v", gateway.ErrUnavailable, l.cfg.Stream, err)
	}
	ack, err := dc.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("append to %s: %w", l.cfg.Stream, err)
	}
	if !ack {
		return fmt.Errorf("%w: %w: append to %s", gateway.ErrUnavailable, gateway.ErrNacked, l.cfg.Stream)
	}
	return nil
}

// Sync appends a marker and waits until it has been read back: by then
// every record appended anywhere before the call has been applied to the
// Store.
func (l *OperationLog) Sync(ctx context.Context) error {
	p := l.pub.Load()
	if p == nil {
		return fmt.Errorf("%w: not connected to RabbitMQ", gateway.ErrUnavailable)
	}
	id := wire.NewID()
	seen := make(chan struct{})
	l.syncs.Store(id, seen)
	defer l.syncs.Delete(id)
	p.mu.Lock()
	err := p.ch.PublishWithContext(ctx, "", l.cfg.Stream, false, false, amqp.Publishing{
		Type: recordMarker, MessageId: id, AppId: wire.AppID, Timestamp: time.Now(),
	})
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: append a marker to %s: %v", gateway.ErrUnavailable, l.cfg.Stream, err)
	}
	select {
	case <-seen:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("read the operations stream up to now: %w", ctx.Err())
	}
}

// BadRecords counts the messages of the stream that were no record.
func (l *OperationLog) BadRecords() uint64 { return l.bad.Load() }

// Reconnects counts the log's connections after the first.
func (l *OperationLog) Reconnects() uint64 { return l.reconnects.Load() }

// streamSegmentBytes is the stream's segment size
// (x-stream-max-segment-size-bytes): retention drops whole segments, so
// smaller ones than the 500 MB default let x-max-age apply to a
// low-volume stream of records.
const streamSegmentBytes = 16 << 20

// serve runs one connection of the log.
func (l *OperationLog) serve(ctx context.Context, conn *amqp.Connection, addr string) error {
	defer conn.CloseDeadline(time.Now().Add(closeTimeout))
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	if err := l.declare(conn); err != nil {
		return err
	}
	cons, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("stream consumer channel: %w", err)
	}
	// A stream consumer needs a prefetch and manual acks.
	if err := cons.Qos(512, 0, false); err != nil {
		return fmt.Errorf("stream consumer qos: %w", err)
	}
	from := time.Now().Add(-l.cfg.Retention)
	deliveries, err := cons.Consume(l.cfg.Stream, "", false, false, false, false,
		amqp.Table{"x-stream-offset": from}) // a timestamp: whole seconds on the wire
	if err != nil {
		return fmt.Errorf("consume %s: %w", l.cfg.Stream, err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("stream publisher channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("stream publisher confirms: %w", err)
	}
	// A channel that dies under a live connection ends this connection
	// too: the next one starts afresh.
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	p := &logPublisher{ch: ch}
	l.pub.Store(p)
	defer l.pub.CompareAndSwap(p, nil)

	marker := wire.NewID()
	if _, err := ch.PublishWithDeferredConfirm("", l.cfg.Stream, false, false, amqp.Publishing{
		Type: recordMarker, MessageId: marker, AppId: wire.AppID, Timestamp: time.Now(),
	}); err != nil {
		return fmt.Errorf("append marker: %w", err)
	}
	l.c.log.Info("reading the operations stream", "stream", l.cfg.Stream, "from", from.UTC().Format(time.RFC3339), "broker", addr)

	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-closed:
			if err == nil {
				return errors.New("connection closed")
			}
			return err
		case err := <-chClosed:
			return fmt.Errorf("operations stream publisher channel closed: %v", err)
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("operations stream consumer stopped")
			}
			l.take(&d, marker)
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("ack stream record: %w", err)
			}
		}
	}
}

// take hands one delivery of the stream to the Store.
func (l *OperationLog) take(d *amqp.Delivery, marker string) {
	if d.Type == recordMarker {
		if d.MessageId == marker {
			l.store.CaughtUp()
		} else if seen, ok := l.syncs.LoadAndDelete(d.MessageId); ok {
			close(seen.(chan struct{}))
		}
		return
	}
	r, err := decodeRecord(d)
	if err != nil {
		l.bad.Add(1)
		l.c.log.Warn("not an operation record; skipped", "stream", l.cfg.Stream, "type", d.Type, "err", err)
		return
	}
	l.store.Apply(r)
}

// declare declares the stream. One that exists with other arguments (say,
// another retention, from a figway configured otherwise) is used as it is.
func (l *OperationLog) declare(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("stream declare channel: %w", err)
	}
	defer ch.Close()
	secs := int64((l.cfg.Retention + time.Second - 1) / time.Second)
	_, err = queueOpts{durable: true, args: amqp.Table{
		"x-queue-type":                    "stream",
		"x-max-age":                       strconv.FormatInt(secs, 10) + "s",
		"x-stream-max-segment-size-bytes": int64(streamSegmentBytes),
	}}.declare(ch, l.cfg.Stream)
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		// The failed declare closed the channel.
		l.c.log.Warn("the operations stream exists with other arguments; using it as it is",
			"stream", l.cfg.Stream, "err", ae.Reason)
		ch2, err := conn.Channel()
		if err != nil {
			return fmt.Errorf("stream declare channel: %w", err)
		}
		defer ch2.Close()
		_, err = ch2.QueueDeclarePassive(l.cfg.Stream, true, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("declare stream %q: %w", l.cfg.Stream, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("declare stream %q: %w", l.cfg.Stream, err)
	}
	return nil
}

func encodeRecord(r *operations.Record) amqp.Publishing {
	h := amqp.Table{
		headerOpMethod:   r.Method,
		headerOpStart:    r.Start.UTC().Format(time.RFC3339Nano),
		headerOpDeadline: r.Deadline.UTC().Format(time.RFC3339Nano),
		headerOpKeep:     r.Keep.Milliseconds(),
		headerOpAt:       r.At.UTC().Format(time.RFC3339Nano),
	}
	if r.Owner != "" {
		h[headerOpOwnerBy], h[headerOpOwner] = r.OwnerBy, r.Owner
	}
	p := amqp.Publishing{MessageId: r.ID, AppId: wire.AppID, Timestamp: r.At, DeliveryMode: amqp.Persistent, Headers: h}
	switch r.Kind {
	case operations.Started:
		p.Type = recordStarted
	case operations.Deleted:
		p.Type = recordDeleted
	case operations.Done:
		p.Type = recordDone
		res := r.Result
		p.Body, p.ContentType = res.Body, res.ContentType
		if res.Status != nil {
			wire.SetStatus(h, status.FromProto(res.Status))
		}
		if res.HTTPStatus != 0 {
			h[headerHTTPStatus] = int32(res.HTTPStatus)
		}
		if len(res.Header)+len(res.Trailer) > 0 {
			b, _ := json.Marshal(replyMetadata{Header: mdBytes(res.Header), Trailer: mdBytes(res.Trailer)})
			h[headerReplyMetadata] = string(b)
		}
	}
	return p
}

func decodeRecord(d *amqp.Delivery) (*operations.Record, error) {
	r := &operations.Record{ID: d.MessageId}
	switch d.Type {
	case recordStarted:
		r.Kind = operations.Started
	case recordDone:
		r.Kind = operations.Done
	case recordDeleted:
		r.Kind = operations.Deleted
	default:
		return nil, fmt.Errorf("unknown type %q", d.Type)
	}
	if len(r.ID) != 32 {
		return nil, fmt.Errorf("message id %q is no operation id", r.ID)
	}
	h := d.Headers
	str := func(k string) string { s, _ := h[k].(string); return s }
	when := func(k string) (time.Time, error) {
		t, err := time.Parse(time.RFC3339Nano, str(k))
		if err != nil {
			return t, fmt.Errorf("%s: %v", k, err)
		}
		return t, nil
	}
	var err error
	r.Method, r.OwnerBy, r.Owner = str(headerOpMethod), str(headerOpOwnerBy), str(headerOpOwner)
	if r.Start, err = when(headerOpStart); err != nil {
		return nil, err
	}
	if r.Deadline, err = when(headerOpDeadline); err != nil {
		return nil, err
	}
	if r.At, err = when(headerOpAt); err != nil {
		return nil, err
	}
	keep, ok := h[headerOpKeep].(int64)
	if !ok {
		return nil, fmt.Errorf("%s: want an integer, not %T", headerOpKeep, h[headerOpKeep])
	}
	r.Keep = time.Duration(keep) * time.Millisecond
	if r.Kind != operations.Done {
		return r, nil
	}
	res := &operations.Result{Body: d.Body, ContentType: d.ContentType}
	st, err := wire.ReplyStatus(h)
	if err != nil {
		return nil, err
	}
	if st != nil {
		res.Status = st.Proto()
	}
	if n, ok := h[headerHTTPStatus].(int32); ok {
		res.HTTPStatus = int(n)
	}
	if j, ok := h[headerReplyMetadata].(string); ok {
		var md replyMetadata
		if err := json.Unmarshal([]byte(j), &md); err != nil {
			return nil, fmt.Errorf("%s: %v", headerReplyMetadata, err)
		}
		res.Header, res.Trailer = mdStrings(md.Header), mdStrings(md.Trailer)
	}
	r.Result = res
	return r, nil
}
