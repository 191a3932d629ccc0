package amqp

import (
	"context"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/wire"
)

// declareCancel declares the cancel exchange (wire.CancelExchange) on a
// channel of its own, and reports whether it exists: figway publishes
// cancels only then, for a publish to an exchange that does not exist
// would close the lane's channel. A broker user without the permission to
// configure it costs the workers their cancels, nothing else.
func (c *Client) declareCancel(conn *amqp.Connection) bool {
	ch, err := conn.Channel()
	if err == nil {
		defer ch.Close()
		// name, kind, durable, autoDelete, internal, noWait, args
		err = ch.ExchangeDeclare(wire.CancelExchange, wire.CancelExchangeType, true, false, false, false, nil)
	}
	if err != nil {
		c.log.Warn("cannot declare the cancel exchange: workers will not learn of cancelled calls",
			"exchange", wire.CancelExchange, "err", err)
		return false
	}
	return true
}

// cancelWait bounds how long a cancel waits for its lane's write token.
const cancelWait = time.Second

// sendCancel tells the workers of method that the caller of the request
// with correlation id corrID, published on l, went away. It does not wait
// for the broker's confirm, and a cancel nobody is bound for is dropped.
func (c *Client) sendCancel(l *lane, method, corrID string) {
	if !l.s.cancels || l.isDead() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cancelWait)
	defer cancel()
	cl := &call{exchange: wire.CancelExchange, key: method, done: make(chan outcome, 1),
		pub: func() amqp.Publishing {
			return amqp.Publishing{CorrelationId: corrID, Type: wire.CancelType, AppId: wire.AppID,
				DeliveryMode: wire.Transient, Timestamp: time.Now()}
		}}
	if err := l.submit(ctx, cl); err != nil {
		c.log.Debug("cancel not sent", "correlation_id", corrID, "err", err)
	}
}

// cancelQueue bounds the cancels waiting for sendCancels; one that does
// not fit is sent when its stream is closed instead.
const cancelQueue = 256

// cancelReq is a cancel for sendCancels to send.
type cancelReq struct {
	l              *lane
	method, corrID string
}

// sendCancels sends the cancels of s.cancelq until ctx is done: those of
// streams failed while their caller's ingress may still be busy sending
// to it, so that the worker stops at once rather than when the caller has
// read what it was sent.
func (c *Client) sendCancels(ctx context.Context, s *session) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-s.cancelq:
			c.sendCancel(r.l, r.method, r.corrID)
		}
	}
}
