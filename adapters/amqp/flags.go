package amqp

import amqp "github.com/rabbitmq/amqp091-go"

// consumeOpts names amqp091-go's positional basic.consume flags.
type consumeOpts struct {
	autoAck   bool
	exclusive bool
}

func (o consumeOpts) consume(ch *amqp.Channel, queue string) (<-chan amqp.Delivery, error) {
	return ch.Consume(queue, "", o.autoAck, o.exclusive, false, false, nil)
}

// queueOpts names amqp091-go's positional queue.declare flags.
type queueOpts struct {
	durable    bool
	autoDelete bool
	exclusive  bool
	args       amqp.Table
}

func (o queueOpts) declare(ch *amqp.Channel, name string) (amqp.Queue, error) {
	return ch.QueueDeclare(name, o.durable, o.autoDelete, o.exclusive, false, o.args)
}

// inspect declares queue passively: it reports the queue's message and
// consumer counts, or fails with 404 NOT_FOUND — closing the channel — if
// the queue does not exist. Passive declares ignore the other flags.
func inspect(ch *amqp.Channel, queue string) (amqp.Queue, error) {
	return ch.QueueDeclarePassive(queue, false, false, false, false, nil)
}
