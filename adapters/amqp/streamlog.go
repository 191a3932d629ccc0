package amqp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/wire"
)

// A stream of figway's records — the operations' (OperationLog), the
// ramps' (RampLog) — is read whole by every figway that shares it and
// appended to by each: one connection of its own reads it from retention
// ago, and appends on a confirm-mode channel of the same connection.

// streamSegmentBytes is the stream's segment size
// (x-stream-max-segment-size-bytes): retention drops whole segments, so
// smaller ones than the 500 MB default let x-max-age apply to a
// low-volume stream of records.
const streamSegmentBytes = 16 << 20

// recordStream is what serveStream needs of one log.
type recordStream struct {
	what      string // "operations", "ramps": in logs and errors
	stream    string
	retention time.Duration
	// marker is the AMQP type of the marker a figway appends at connect:
	// reading its own back says the stream has been read up to then.
	marker string
	// pub holds the connection's publisher while it serves.
	pub *atomic.Pointer[logPublisher]
	// take handles one delivery, in the stream's order; marker is this
	// connection's.
	take func(d *amqp.Delivery, marker string)
}

// serveStream runs one connection of a log: it declares the stream, reads
// it from s.retention ago into s.take, appends its marker, and serves
// appends through s.pub until ctx ends or the connection fails.
func (c *Client) serveStream(ctx context.Context, conn *amqp.Connection, addr string, s recordStream) error {
	defer conn.CloseDeadline(time.Now().Add(closeTimeout))
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	if err := c.declareStream(conn, s.stream, s.retention); err != nil {
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
	from := time.Now().Add(-s.retention)
	deliveries, err := cons.Consume(s.stream, "", false, false, false, false,
		amqp.Table{"x-stream-offset": from}) // a timestamp: whole seconds on the wire
	if err != nil {
		return fmt.Errorf("consume %s: %w", s.stream, err)
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
	s.pub.Store(p)
	defer s.pub.CompareAndSwap(p, nil)

	marker := wire.NewID()
	if _, err := ch.PublishWithDeferredConfirm("", s.stream, false, false, amqp.Publishing{
		Type: s.marker, MessageId: marker, AppId: wire.AppID, Timestamp: time.Now(),
	}); err != nil {
		return fmt.Errorf("append marker: %w", err)
	}
	c.log.Info("reading the "+s.what+" stream", "stream", s.stream, "from", from.UTC().Format(time.RFC3339), "broker", addr)
	return s.read(ctx, deliveries, marker, closed, chClosed)
}

// read hands the stream's records to s.take until ctx ends, or the
// connection, the publisher's channel or the consumer is lost; marker is
// the id of the marker this connection appended.
func (s recordStream) read(ctx context.Context, deliveries <-chan amqp.Delivery, marker string, closed, chClosed <-chan *amqp.Error) error {
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
			return fmt.Errorf("%s stream publisher channel closed: %v", s.what, err)
		case d, ok := <-deliveries:
			if !ok {
				return fmt.Errorf("%s stream consumer stopped", s.what)
			}
			s.take(&d, marker)
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("ack stream record: %w", err)
			}
		}
	}
}

// appendRecord publishes msg on stream through the publisher pub holds,
// and waits for the broker's confirm.
func appendRecord(ctx context.Context, pub *atomic.Pointer[logPublisher], stream string, msg amqp.Publishing) error {
	p := pub.Load()
	if p == nil {
		return fmt.Errorf("%w: not connected to RabbitMQ", gateway.ErrUnavailable)
	}
	p.mu.Lock()
	dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, "", stream, false, false, msg)
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: append to %s: %v", gateway.ErrUnavailable, stream, err)
	}
	ack, err := dc.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("append to %s: %w", stream, err)
	}
	if !ack {
		return fmt.Errorf("%w: %w: append to %s", gateway.ErrUnavailable, gateway.ErrNacked, stream)
	}
	return nil
}

// declareStream declares a stream of figway's records that keeps them for
// retention. One that exists with other arguments (say, another
// retention, from a figway configured otherwise) is used as it is.
func (c *Client) declareStream(conn *amqp.Connection, stream string, retention time.Duration) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("stream declare channel: %w", err)
	}
	defer ch.Close()
	secs := int64((retention + time.Second - 1) / time.Second)
	_, err = queueOpts{durable: true, args: amqp.Table{
		"x-queue-type":                    "stream",
		"x-max-age":                       strconv.FormatInt(secs, 10) + "s",
		"x-stream-max-segment-size-bytes": int64(streamSegmentBytes),
	}}.declare(ch, stream)
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		// The failed declare closed the channel.
		c.log.Warn("the stream exists with other arguments; using it as it is", "stream", stream, "err", ae.Reason)
		ch2, err := conn.Channel()
		if err != nil {
			return fmt.Errorf("stream declare channel: %w", err)
		}
		defer ch2.Close()
		_, err = ch2.QueueDeclarePassive(stream, true, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("declare stream %q: %w", stream, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("declare stream %q: %w", stream, err)
	}
	return nil
}
