package amqp

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Topology is what the Client declares on RabbitMQ after every connect,
// before any publish. It may be empty when the services declare their own.
type Topology struct {
	Exchanges []Exchange
	Queues    []Queue
}

// Exchange is an exchange to declare.
type Exchange struct {
	// Name may not be empty nor start with "amq.", RabbitMQ's reserved
	// prefix.
	Name string

	// Type is one of direct, topic, fanout or headers. It is required.
	Type string

	// Durable exchanges survive a broker restart. If Durable is nil, true
	// is used.
	Durable *bool
}

// Queue is a queue to declare and bind.
type Queue struct {
	// Name may not be empty nor start with "amq.".
	Name string

	// Type is classic or quorum. If Type is empty, classic is used.
	Type string

	// Durable queues survive a broker restart; quorum queues are always
	// durable. If Durable is nil, true is used.
	Durable *bool

	// Bind are the queue's bindings. YAML bind takes one mapping or a
	// list of them.
	Bind []Binding

	// Arguments are passed to queue.declare as they are, for instance
	// x-message-ttl or x-overflow. Integers are int64.
	Arguments map[string]any

	// DeliveryLimit, on a quorum queue, is how many times the queue
	// delivers a message that comes back unsettled (its consumer died,
	// or nacked it with requeue) before it dead-letters it, or drops it
	// without a dead-letter exchange: the x-delivery-limit argument. It
	// ends a poison request's loop even for workers that do not count
	// deliveries themselves. If 0, the broker's default holds: none on
	// RabbitMQ 3.x, 20 on 4.x.
	DeliveryLimit int

	// DeadLetterExchange, if non-nil, is the exchange the queue sends the
	// messages it dead-letters to — past DeliveryLimit, rejected without
	// requeue, or expired: the x-dead-letter-exchange argument. "" is the
	// default exchange, which routes by DeadLetterRoutingKey.
	DeadLetterExchange *string

	// DeadLetterRoutingKey replaces the routing key of a dead-lettered
	// message (x-dead-letter-routing-key). If empty, it keeps its own.
	DeadLetterRoutingKey string
}

// Binding binds a queue to an exchange.
type Binding struct {
	// Exchange is declared in Topology.Exchanges or is one of RabbitMQ's
	// predefined amq.* exchanges.
	Exchange string

	// Key is the binding key; empty binds with "".
	Key string
}

// declare declares the exchanges, queues and bindings of t on a channel of
// its own, closed afterwards. Declarations are idempotent; one that
// conflicts with what the broker has (say, a queue of another type) fails
// here, before figway serves, not on a caller's request.
func declare(conn *amqp.Connection, t Topology) error {
	if len(t.Exchanges) == 0 && len(t.Queues) == 0 {
		return nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("topology channel: %w", err)
	}
	defer ch.Close()
	for _, x := range t.Exchanges {
		durable := x.Durable == nil || *x.Durable
		// name, kind, durable, autoDelete, internal, noWait, args
		if err := ch.ExchangeDeclare(x.Name, x.Type, durable, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %q: %w", x.Name, err)
		}
	}
	for _, q := range t.Queues {
		o := queueOpts{durable: q.Durable == nil || *q.Durable, args: q.arguments()}
		if _, err := o.declare(ch, q.Name); err != nil {
			return fmt.Errorf("declare queue %q: %w", q.Name, err)
		}
		for _, b := range q.Bind {
			if err := ch.QueueBind(q.Name, b.Key, b.Exchange, false, nil); err != nil {
				return fmt.Errorf("bind queue %q to %q with %q: %w", q.Name, b.Exchange, b.Key, err)
			}
		}
	}
	return nil
}

// arguments returns the queue.declare arguments of q: its Arguments and
// those its named settings stand for.
func (q *Queue) arguments() amqp.Table {
	args := tableOf(q.Arguments)
	set := func(k string, v any) {
		if args == nil {
			args = amqp.Table{}
		}
		args[k] = v
	}
	if q.Type == "quorum" {
		set("x-queue-type", "quorum")
	}
	if q.DeliveryLimit > 0 {
		set("x-delivery-limit", int64(q.DeliveryLimit))
	}
	if q.DeadLetterExchange != nil {
		set("x-dead-letter-exchange", *q.DeadLetterExchange)
	}
	if q.DeadLetterRoutingKey != "" {
		set("x-dead-letter-routing-key", q.DeadLetterRoutingKey)
	}
	return args
}

// tableOf converts YAML-decoded arguments to AMQP field values: amqp091-go
// refuses unsigned and plain int types in a Table.
func tableOf(m map[string]any) amqp.Table {
	if len(m) == 0 {
		return nil
	}
	t := make(amqp.Table, len(m))
	for k, v := range m {
		t[k] = fieldOf(v)
	}
	return t
}

func fieldOf(v any) any {
	switch v := v.(type) {
	case int:
		return int64(v)
	case uint:
		return int64(v)
	case uint64:
		return int64(v)
	case uint32:
		return int64(v)
	case int32:
		return int64(v)
	case map[string]any:
		return tableOf(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = fieldOf(e)
		}
		return out
	}
	return v
}
