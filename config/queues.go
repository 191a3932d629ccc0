package config

import (
	"slices"
	"strings"
)

// Queues returns the queues that receive the messages of broker route r,
// whose consumers serve it: the route's Queue when set; on the default
// exchange, the queue its routing key names; otherwise the queues of the
// topology bound to its exchange with a binding that matches its routing
// key, by the exchange's type (direct: equal keys; topic: `*` one word,
// `#` zero or more; fanout: every binding). It returns nil when they cannot
// be known: the exchange is not declared in the topology nor predefined,
// it is a headers exchange (which routes by message headers), or no
// binding matches.
//
// Stream queues of the topology are left out: their consumers read from
// an offset and do not take requests off the queue (docs/errors.md, "No
// consumer"). Classic and quorum queues are counted.
func (c *Config) Queues(r *Route) []string {
	out := c.routeQueues(r)
	return slices.DeleteFunc(out, func(q string) bool { return !c.countable(q) })
}

// countable reports whether the consumer count RabbitMQ gives for queue is
// one figway acts on: a classic or quorum queue, or one the topology does
// not declare (the route's queue: key names a queue figway takes as it is).
func (c *Config) countable(queue string) bool {
	for _, q := range c.Topology.Queues {
		if q.Name != queue {
			continue
		}
		typ := q.Type
		if t, ok := q.Arguments["x-queue-type"].(string); ok {
			typ = t
		}
		return typ != "stream"
	}
	return true
}

func (c *Config) routeQueues(r *Route) []string {
	switch {
	case r.To == TargetLegacy && !r.Shadow:
		return nil // publishes nothing
	case r.Queue != "":
		return []string{r.Queue}
	case r.Exchange == "" && r.RoutingKey != "":
		return []string{r.RoutingKey}
	case r.Exchange == "":
		return nil
	}
	kind := c.exchangeType(r.Exchange)
	var out []string
	for _, q := range c.Topology.Queues {
		for _, b := range q.Bind {
			if b.Exchange != r.Exchange || slices.Contains(out, q.Name) {
				continue
			}
			if (kind == "direct" && b.Key == r.RoutingKey) || kind == "fanout" ||
				(kind == "topic" && topicMatch(strings.Split(b.Key, "."), strings.Split(r.RoutingKey, "."))) {
				out = append(out, q.Name)
			}
		}
	}
	return out
}

// exchangeType returns the type of exchange name as the topology declares
// it or RabbitMQ predefines it, or "" when unknown.
func (c *Config) exchangeType(name string) string {
	for _, e := range c.Topology.Exchanges {
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
