package amqp

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/config"
)

// declare declares the exchanges, queues and bindings of t on a channel of
// its own, closed afterwards. Declarations are idempotent; one that
// conflicts with what the broker has (say, a queue of another type) fails
// here, before figway serves, not on a caller's request.
func declare(conn *amqp.Connection, t config.Topology) error {
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
		o := queueOpts{durable: q.Durable == nil || *q.Durable, args: tableOf(q.Arguments)}
		if q.Type == "quorum" {
			if o.args == nil {
				o.args = amqp.Table{}
			}
			o.args["x-queue-type"] = "quorum"
		}
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
