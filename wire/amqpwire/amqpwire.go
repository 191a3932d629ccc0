// Package amqpwire renders figway's requests as amqp091-go messages, as
// docs/wire-protocol.md specifies them. It is apart from package wire so
// that the gateway core, which builds requests, does not depend on the AMQP
// client library.
package amqpwire

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/wire"
)

// Publishing renders r as an AMQP message published at now. The expiration
// is the time left until the deadline, rounded up to whole milliseconds so a
// request that still has 0.4 ms to live is not given 0 (which RabbitMQ reads
// as "expire at once unless a consumer is ready").
func Publishing(r *wire.Request, now time.Time) amqp.Publishing {
	n := 3 + len(r.Metadata)
	if r.CloudEvents {
		n += 5
	}
	h := make(amqp.Table, n)
	if r.CloudEvents {
		h[wire.HeaderCESpecVersion] = wire.CloudEventsSpecVersion
		h[wire.HeaderCEID] = r.MessageID
		h[wire.HeaderCESource] = r.Source
		h[wire.HeaderCEType] = r.Method
		h[wire.HeaderCETime] = wire.FormatTime(now)
	}
	if r.Shadow {
		h[wire.HeaderShadow] = int32(1)
	}
	if r.Traceparent != "" {
		h[wire.HeaderTraceparent] = r.Traceparent
		if r.Tracestate != "" {
			h[wire.HeaderTracestate] = r.Tracestate
		}
	}
	for k, vs := range r.Metadata {
		switch len(vs) {
		case 0:
		case 1:
			h[wire.HeaderMetadataPrefix+k] = vs[0]
		default:
			a := make([]any, len(vs))
			for i, v := range vs {
				a[i] = v
			}
			h[wire.HeaderMetadataPrefix+k] = a
		}
	}
	p := amqp.Publishing{
		Headers:       h,
		ContentType:   r.ContentType,
		DeliveryMode:  wire.Transient,
		CorrelationId: r.CorrelationID,
		ReplyTo:       r.ReplyTo,
		MessageId:     r.MessageID,
		Timestamp:     now,
		Type:          r.Method,
		AppId:         wire.AppID,
		Body:          r.Body,
	}
	if r.Persistent {
		p.DeliveryMode = wire.Persistent
	}
	if !r.Deadline.IsZero() {
		h[wire.HeaderDeadline] = wire.FormatTime(r.Deadline)
		p.Expiration = wire.Expiration(r.Deadline.Sub(now))
	}
	return p
}
