// Package rawecho is the raw echo responder of the benchmarks: amqp091-go
// and nothing else between a queue and its requests' reply_to. It is the
// floor an SDK worker is measured against (make bench's amqp-raw and
// amqp-raw-ack scenarios, the worker's BenchmarkRequest).
package rawecho

import (
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Start echoes every request of queue to its reply_to, from several
// channels, until stop. Without ack it consumes with autoAck (make
// bench's amqp-raw); with ack it acks manually, as an at-least-once worker
// must — a request only once its reply is published — and as cheaply as
// RabbitMQ allows (amqp-raw-ack): see echoAcking.
func Start(url, queue string, channels int, ack bool) (stop func(), err error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for i := range channels {
		ch, err := conn.Channel()
		if err != nil {
			conn.Close()
			return nil, err
		}
		if i == 0 {
			// durable, auto-delete: RabbitMQ 4 deprecates transient
			// queues that are not exclusive
			if _, err := ch.QueueDeclare(queue, true, true, false, false, nil); err != nil {
				conn.Close()
				return nil, err
			}
		}
		ch.Qos(256, 0, false)
		ds, err := ch.Consume(queue, "", !ack, false, false, false, nil)
		if err != nil {
			conn.Close()
			return nil, err
		}
		if ack {
			wg.Go(func() { echoAcking(ch, ds) })
			continue
		}
		wg.Go(func() {
			for d := range ds {
				ch.Publish("", d.ReplyTo, false, false, amqp.Publishing{CorrelationId: d.CorrelationId, Body: d.Body})
			}
		})
	}
	return func() { conn.Close(); wg.Wait() }, nil
}

// ackEvery bounds how many replied requests echoAcking leaves unacked
// while more keep coming: well under the prefetch (256), so that the
// broker never waits for an ack to deliver.
const ackEvery = 64

// echoAcking echoes the deliveries ds of ch, one goroutine owning ch, and
// acks them with multiple set: one basic.ack for every request replied to
// since the last, sent when no delivery is waiting or ackEvery have
// gathered. Deliveries are handled in order, so the last tag settles
// every earlier one. At c=1 that is one ack per request, as it must be;
// under load, one per many.
func echoAcking(ch *amqp.Channel, ds <-chan amqp.Delivery) {
	var last uint64
	unacked := 0
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-ds: // another request is waiting: its ack can join
		default:
			if unacked > 0 {
				ch.Ack(last, true)
				unacked = 0
			}
			d, ok = <-ds
		}
		if !ok {
			return
		}
		ch.Publish("", d.ReplyTo, false, false, amqp.Publishing{CorrelationId: d.CorrelationId, Body: d.Body})
		last = d.DeliveryTag
		if unacked++; unacked >= ackEvery {
			ch.Ack(last, true)
			unacked = 0
		}
	}
}
