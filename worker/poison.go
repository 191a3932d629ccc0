package worker

import (
	amqp "github.com/rabbitmq/amqp091-go"
)

// defaultMaxDeliveries is Config.MaxDeliveries's default: a request that
// took its worker down three times is not run a fourth.
const defaultMaxDeliveries = 3

// deliveryCountHeader is the header in which a quorum queue tells how
// many times it delivered a message before: absent on the first delivery,
// then 1, 2, …. Every return counts — the consumer's channel or
// connection closing (its process died) as much as a nack with requeue:
// RabbitMQ 3.10 counts the returns, 4.x the acquisitions, which for a
// message that comes back come to the same number. Classic queues set no
// such header; they only flag a redelivery.
const deliveryCountHeader = "x-delivery-count"

// carriedCountHeader is the header in which a request set aside by a
// worker (quarantine.go) carries the deliveries its queue had counted
// against it: the copy starts the queue's count again from nothing, and
// its count is the sum of both (docs/wire-protocol.md, "Poison requests").
const carriedCountHeader = "figway-delivery-count"

// deliveryCount returns the number of times d was delivered before, as
// its queue counted them plus what a set-aside copy carries, and whether
// anything counts at all.
func deliveryCount(d *amqp.Delivery) (n int64, ok bool) {
	queued, ok1 := countHeader(d.Headers[deliveryCountHeader])
	carried, ok2 := countHeader(d.Headers[carriedCountHeader])
	return queued + carried, ok1 || ok2
}

// countHeader reads a count header: RabbitMQ sends x-delivery-count as a
// long (int64 here); a signed int is taken too, and a negative one is not
// a count.
func countHeader(v any) (int64, bool) {
	var n int64
	switch v := v.(type) {
	case int64:
		n = v
	case int32:
		n = int64(v)
	default:
		return 0, false
	}
	if n < 0 {
		return 0, false
	}
	return n, true
}

// poisoned reports whether d has been delivered more than max times: the
// requests before this delivery of it all ended without settling it, which
// for a request whose handler crashes its process means it took the
// worker down each time. A max of 0 or less never refuses.
func poisoned(d *amqp.Delivery, max int) (before int64, yes bool) {
	n, ok := deliveryCount(d)
	return n, ok && max > 0 && n >= int64(max)
}
