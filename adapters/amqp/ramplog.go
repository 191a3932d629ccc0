package amqp

import (
	"context"
	"encoding/json"

	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/ramp"
	"github.com/figway/figway/wire"
)

var _ ramp.Log = (*RampLog)(nil)

// Record types of the ramps' stream (the AMQP type property).
const (
	recordRamp = "figway.ramp"
	// recordRampMarker is appended by each figway at connect: reading its
	// own marker back says the stream has been read up to then.
	recordRampMarker = "figway.ramp.marker"
)

// RampLog keeps the ramps' records on a RabbitMQ stream, on a connection
// of its own. It implements ramp.Log. Every figway with a ramped route
// appends its records there and reads all of them back into its
// ramp.Controller, from ramp.Retention ago at each connect and then as
// they come (docs/wire-protocol.md, "Ramps stream"). A record is JSON in
// the message body.
type RampLog struct {
	c      *Client
	stream string
	pub    atomic.Pointer[logPublisher]
	ctl    *ramp.Controller // set by Run

	reconnects atomic.Uint64
	bad        atomic.Uint64
}

// NewRampLog returns a RampLog on stream that connects with c's settings.
// It connects nothing: Run does.
func (c *Client) NewRampLog(stream string) *RampLog {
	return &RampLog{c: c, stream: stream}
}

// Run connects, declares the stream, reads it into ctl and keeps reading,
// reconnecting when the connection is lost, until ctx is cancelled.
func (l *RampLog) Run(ctx context.Context, ctl *ramp.Controller) error {
	l.ctl = ctl
	return l.c.supervise(ctx, l.c.cfg.Name+" ramps", &l.reconnects, new(atomic.Bool), l.serve)
}

// Append publishes r on the stream and waits for the broker's confirm.
func (l *RampLog) Append(ctx context.Context, r *ramp.Record) error {
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return appendRecord(ctx, &l.pub, l.stream, amqp.Publishing{Type: recordRamp, ContentType: "application/json", Body: body,
		AppId: wire.AppID, Timestamp: r.At, DeliveryMode: amqp.Persistent})
}

// BadRecords counts the messages of the stream that were no record.
func (l *RampLog) BadRecords() uint64 { return l.bad.Load() }

// serve runs one connection of the log.
func (l *RampLog) serve(ctx context.Context, conn *amqp.Connection, addr string) error {
	return l.c.serveStream(ctx, conn, addr, recordStream{what: "ramps", stream: l.stream, retention: ramp.Retention,
		marker: recordRampMarker, pub: &l.pub, take: l.take})
}

// take hands one delivery of the stream to the Controller.
func (l *RampLog) take(d *amqp.Delivery, marker string) {
	switch d.Type {
	case recordRampMarker:
		if d.MessageId == marker {
			l.ctl.CaughtUp()
		}
		return
	case recordRamp:
	default:
		l.bad.Add(1)
		return
	}
	var r ramp.Record
	if err := json.Unmarshal(d.Body, &r); err != nil || r.Route == "" {
		l.bad.Add(1)
		l.c.log.Warn("not a ramp record; skipped", "stream", l.stream, "err", err)
		return
	}
	l.ctl.Apply(&r)
}
