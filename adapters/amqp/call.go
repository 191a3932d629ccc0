package amqp

import (
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
)

// call is one publish on a lane: an rpc request waiting for its reply, or an
// event waiting for its confirm.
type call struct {
	exchange, key string
	pub           func() amqp.Publishing // renders the message at publish time
	msg           amqp.Publishing        // owner-local: the message while the lane writes it
	event         bool
	msgID         string
	corrID        string
	sentAt        time.Time // owner-local: when the lane wrote the publish
	// span, if not nil, is the recording span of the call's context, on
	// which the lane records the publish's events (Config.Tracing).
	span trace.Span

	done      chan outcome // buffered 1; written once by resolve
	resolved  atomic.Bool
	published atomic.Bool // set by the lane once the publish is written
	returned  bool        // owner-local: a basic.return came for this event
}

// outcome ends a call: a reply, or an error. It holds the parts of the
// reply delivery the gateway reads, not the delivery: a copy of those
// costs no allocation per reply.
type outcome struct {
	body        []byte
	contentType string
	headers     amqp.Table
	err         error
}

// resolve ends c with o. Only the first outcome counts: a reply racing a
// return, or a confirm racing a channel close, cannot end a call twice.
func (c *call) resolve(o outcome) {
	if c.resolved.CompareAndSwap(false, true) {
		c.done <- o
	}
}

// newCall returns the rpc call of req, to publish to exchange with key.
func newCall(exchange, key string, req *wire.Request) *call {
	return &call{
		exchange: exchange,
		key:      key,
		done:     make(chan outcome, 1),
		pub:      func() amqp.Publishing { return amqpwire.Publishing(req, time.Now()) },
	}
}

// newEvent returns the event of req, to publish to exchange with key.
func newEvent(exchange, key string, req *wire.Request) *call {
	cl := newCall(exchange, key, req)
	cl.event = true
	cl.msgID = req.MessageID
	return cl
}
