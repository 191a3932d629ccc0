package amqp

import (
	"slices"
	"strings"
)

// ServingQueues returns the queues whose consumers serve what is published
// with exchange and routingKey: queue when it is not empty (a queue the
// topology need not declare); on the default exchange, the queue the
// routing key names; otherwise the queues of t bound to the exchange with a
// binding that matches the routing key, by the exchange's type (direct:
// equal keys; topic: `*` one word, `#` zero or more; fanout: every
// binding). It returns nil when they cannot be known: the exchange is not
// declared in t nor predefined, it is a headers exchange (which routes by
// message headers), or no binding matches.
//
// Stream queues of t are left out: their consumers read from an offset
// and do not take requests off the queue (docs/errors.md, "No consumer").
// Classic and quorum queues are counted.
func (t *Topology) ServingQueues(queue, exchange, routingKey string) []string {
	out := t.bound(queue, exchange, routingKey)
	return slices.DeleteFunc(out, func(q string) bool { return !t.countable(q) })
}

// countable reports whether the consumer count RabbitMQ gives for queue is
// one figway acts on: a classic or quorum queue, or one t does not declare
// (a route's queue: key names a queue figway takes as it is).
func (t *Topology) countable(queue string) bool {
	for _, q := range t.Queues {
		if q.Name != queue {
			continue
		}
		typ := q.Type
		if x, ok := q.Arguments["x-queue-type"].(string); ok {
			typ = x
		}
		return typ != "stream"
	}
	return true
}

func (t *Topology) bound(queue, exchange, routingKey string) []string {
	switch {
	case queue != "":
		return []string{queue}
	case exchange == "" && routingKey != "":
		return []string{routingKey}
	case exchange == "":
		return nil
	}
	kind := t.exchangeType(exchange)
	var out []string
	for _, q := range t.Queues {
		for _, b := range q.Bind {
			if b.Exchange != exchange || slices.Contains(out, q.Name) {
				continue
			}
			if (kind == "direct" && b.Key == routingKey) || kind == "fanout" ||
				(kind == "topic" && topicMatch(strings.Split(b.Key, "."), strings.Split(routingKey, "."))) {
				out = append(out, q.Name)
			}
		}
	}
	return out
}

// exchangeType returns the type of exchange name as t declares it or
// RabbitMQ predefines it, or "" when unknown.
func (t *Topology) exchangeType(name string) string {
	for _, e := range t.Exchanges {
		if e.Name == name {
			return e.Type
		}
	}
	switch name {
	case "amq.direct":
		return "direct"
	case "amq.topic":
		return "topic"
	case "amq.fanout":
		return "fanout"
	}
	return ""
}

// topicMatch reports whether the words of a routing key match those of a
// topic binding key: `*` matches exactly one word, `#` zero or more.
func topicMatch(pattern, key []string) bool {
	for len(pattern) > 0 {
		switch p := pattern[0]; p {
		case "#":
			for i := 0; i <= len(key); i++ {
				if topicMatch(pattern[1:], key[i:]) {
					return true
				}
			}
			return false
		default:
			if len(key) == 0 || (p != "*" && p != key[0]) {
				return false
			}
		}
		pattern, key = pattern[1:], key[1:]
	}
	return len(key) == 0
}
