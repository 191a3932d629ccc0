package amqp

import (
	"context"
	"encoding/json"
	"fmt"
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
	return appendRecord(ctx, &l.pub, l.cfg.Stream, encodeRecord(r))
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

// serve runs one connection of the log.
func (l *OperationLog) serve(ctx context.Context, conn *amqp.Connection, addr string) error {
	return l.c.serveStream(ctx, conn, addr, recordStream{what: "operations", stream: l.cfg.Stream, retention: l.cfg.Retention,
		marker: recordMarker, pub: &l.pub, take: l.take})
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
	if r.Result, err = decodeResult(d); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeResult is the outcome a done record carries: the reply's body,
// status, HTTP status and metadata.
func decodeResult(d *amqp.Delivery) (*operations.Result, error) {
	h := d.Headers
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
	return res, nil
}
