package worker

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// declare declares the queue name as q says, each binding's exchange as a
// durable topic exchange, and the bindings. Every declaration is
// idempotent, so it runs at start and after every reconnect: a broker that
// lost a non-durable queue, or was reset, gets it back. A queue or
// exchange that exists with other properties makes the broker close the
// channel with PRECONDITION_FAILED, which Run returns.
func declare(ch *amqp.Channel, name string, q *Queue) error {
	var args amqp.Table
	if q.Type == Quorum {
		args = amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}
	}
	// Classic is the default type; declaring it without the argument
	// also matches a classic queue that someone declared without it.
	const autoDelete, exclusive, noWait = false, false, false
	if _, err := ch.QueueDeclare(name, !q.Transient, autoDelete, exclusive, noWait, args); err != nil {
		return fmt.Errorf("declare queue %s: %w", name, err)
	}
	for _, b := range q.Bindings {
		const durable, internal = true, false
		if err := ch.ExchangeDeclare(b.Exchange, amqp.ExchangeTopic, durable, autoDelete, internal, noWait, nil); err != nil {
			return fmt.Errorf("declare exchange %s: %w", b.Exchange, err)
		}
		if err := ch.QueueBind(name, b.Key, b.Exchange, noWait, nil); err != nil {
			return fmt.Errorf("bind queue %s to %s with %q: %w", name, b.Exchange, b.Key, err)
		}
	}
	return nil
}
