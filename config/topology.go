package config

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/figway/figway/config/yamlfile"
)

func (d *decoder) topology(v *yamlfile.Value, path string) Topology {
	f := d.Fields(v, path, "exchanges", "queues")
	var t Topology
	ep := yamlfile.Field(path, "exchanges")
	items, _ := d.Items(f["exchanges"], ep)
	for i, it := range items {
		p := yamlfile.Index(ep, i)
		ef := d.object(it, p, "name", "type", "durable")
		t.Exchanges = append(t.Exchanges, Exchange{
			Name:    d.Str(ef["name"], yamlfile.Field(p, "name")),
			Type:    yamlfile.Enum(d.Decoder, ef["type"], yamlfile.Field(p, "type"), "direct", "topic", "fanout", "headers"),
			Durable: d.optBool(ef["durable"], yamlfile.Field(p, "durable")),
		})
	}
	qp := yamlfile.Field(path, "queues")
	items, _ = d.Items(f["queues"], qp)
	for i, it := range items {
		p := yamlfile.Index(qp, i)
		qf := d.object(it, p, "name", "type", "durable", "bind", "arguments",
			"delivery_limit", "dead_letter_exchange", "dead_letter_routing_key")
		q := Queue{
			Name:                 d.Str(qf["name"], yamlfile.Field(p, "name")),
			Type:                 yamlfile.Enum(d.Decoder, qf["type"], yamlfile.Field(p, "type"), "classic", "quorum"),
			Durable:              d.optBool(qf["durable"], yamlfile.Field(p, "durable")),
			Bind:                 d.bindings(qf["bind"], yamlfile.Field(p, "bind")),
			Arguments:            d.arguments(qf["arguments"], yamlfile.Field(p, "arguments")),
			DeliveryLimit:        d.Positive(qf["delivery_limit"], yamlfile.Field(p, "delivery_limit"), math.MaxInt32, ""),
			DeadLetterRoutingKey: d.Str(qf["dead_letter_routing_key"], yamlfile.Field(p, "dead_letter_routing_key")),
		}
		if x, ok := d.StrOK(qf["dead_letter_exchange"], yamlfile.Field(p, "dead_letter_exchange")); ok {
			q.DeadLetterExchange = &x
		}
		t.Queues = append(t.Queues, q)
	}
	return t
}

func (d *decoder) optBool(v *yamlfile.Value, path string) *bool {
	if v == nil {
		return nil
	}
	b := d.Bool(v, path)
	return &b
}

// bindings decodes bind: one mapping, or a list of them. validate knows
// a single mapping as bind[0] and reports it as bind.
func (d *decoder) bindings(v *yamlfile.Value, path string) []Binding {
	if v == nil {
		return nil
	}
	if v.Kind == yamlfile.Mapping {
		d.P.Renames[yamlfile.Index(path, 0)] = path
		return []Binding{d.binding(v, path)}
	}
	items, ok := d.Items(v, path)
	if !ok {
		return nil
	}
	bs := make([]Binding, 0, len(items))
	for i, it := range items {
		bs = append(bs, d.binding(it, yamlfile.Index(path, i)))
	}
	return bs
}

func (d *decoder) binding(v *yamlfile.Value, path string) Binding {
	f := d.object(v, path, "exchange", "key")
	return Binding{
		Exchange: d.Str(f["exchange"], yamlfile.Field(path, "exchange")),
		Key:      d.Str(f["key"], yamlfile.Field(path, "key")),
	}
}

// arguments decodes the queue.declare arguments into the types an AMQP
// table holds.
func (d *decoder) arguments(v *yamlfile.Value, path string) map[string]any {
	if v == nil {
		return nil
	}
	if v.Kind != yamlfile.Mapping {
		d.WrongType(v, path, "a mapping of x-arguments")
		return nil
	}
	args := make(map[string]any, len(v.Members))
	for _, m := range v.Members {
		p := yamlfile.Field(path, m.Key)
		d.P.Lines[p] = m.Line
		if m.Key == "x-queue-type" {
			d.P.Add(p, m.Line, fmt.Errorf("set the queue's type instead"))
			continue
		}
		if a, ok := d.tableValue(m.Val, p); ok {
			args[m.Key] = a
		}
	}
	return args
}

func (d *decoder) tableValue(v *yamlfile.Value, path string) (any, bool) {
	switch v.Kind {
	case yamlfile.Null:
		return nil, true
	case yamlfile.Sequence:
		list := make([]any, 0, len(v.Items))
		for i, it := range v.Items {
			if a, ok := d.tableValue(it, yamlfile.Index(path, i)); ok {
				list = append(list, a)
			}
		}
		return list, true
	case yamlfile.Mapping:
		table := make(map[string]any, len(v.Members))
		for _, m := range v.Members {
			if a, ok := d.tableValue(m.Val, yamlfile.Field(path, m.Key)); ok {
				table[m.Key] = a
			}
		}
		return table, true
	}
	if u, ok := v.V.(uint64); ok && u > math.MaxInt64 {
		d.P.Add(path, v.Line, fmt.Errorf("%d does not fit the 64-bit signed integer of an AMQP table", u))
		return nil, false
	}
	return v.V, true
}

// predefined are the exchanges every RabbitMQ virtual host has.
var predefined = []string{"amq.direct", "amq.fanout", "amq.headers", "amq.match", "amq.topic", "amq.rabbitmq.trace"}

// validateTopology checks names and that bindings refer to exchanges that
// will exist. It runs after defaults.
func validateTopology(t *Topology, p *yamlfile.Problems, broken map[string]bool) {
	exchanges := map[string]string{} // name → path
	for i, e := range t.Exchanges {
		path := yamlfile.Index("topology.exchanges", i)
		if broken[path] {
			continue
		}
		checkName(e.Name, "exchange", path, exchanges, p)
		if e.Type == "" {
			p.Once(yamlfile.Field(path, "type"), "required: direct, topic, fanout or headers")
		}
	}
	queues := map[string]string{}
	for i, q := range t.Queues {
		path := yamlfile.Index("topology.queues", i)
		if broken[path] {
			continue
		}
		checkName(q.Name, "queue", path, queues, p)
		if q.Type == "quorum" && q.Durable != nil && !*q.Durable {
			p.At(yamlfile.Field(path, "durable"), "quorum queues are always durable; leave durable out")
		}
		validateDeadLetter(&q, path, exchanges, p)
		for j, b := range q.Bind {
			bp := yamlfile.Index(yamlfile.Field(path, "bind"), j)
			if broken[bp] {
				continue
			}
			if b.Exchange == "" {
				p.Once(yamlfile.Field(bp, "exchange"), "required: the exchange to bind to (the default exchange, \"\", already routes to every queue by its name)")
				continue
			}
			checkExchange(b.Exchange, yamlfile.Field(bp, "exchange"), exchanges, p)
		}
	}
}

// checkExchange checks that exchange, named at path, is declared in the
// topology or predefined.
func checkExchange(exchange, path string, declared map[string]string, p *yamlfile.Problems) {
	if declared[exchange] != "" || slices.Contains(predefined, exchange) {
		return
	}
	msg := fmt.Sprintf("exchange %q is not declared in topology.exchanges nor one of RabbitMQ's predefined amq.* exchanges", exchange)
	if s := yamlfile.Suggest(exchange, slices.Concat(slices.Sorted(maps.Keys(declared)), predefined)); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	p.At(path, "%s", msg)
}

// validateDeadLetter checks the delivery limit and dead-lettering of the
// queue at path: a delivery limit only on a quorum queue, a dead-letter
// exchange that will exist, a routing key for the default exchange, and
// each setting in one place, not also among the arguments.
func validateDeadLetter(q *Queue, path string, exchanges map[string]string, p *yamlfile.Problems) {
	if q.DeliveryLimit > 0 && q.Type != "quorum" {
		p.At(yamlfile.Field(path, "delivery_limit"), "only quorum queues count deliveries; set type: quorum")
	}
	xp := yamlfile.Field(path, "dead_letter_exchange")
	switch x := q.DeadLetterExchange; {
	case x == nil && q.DeadLetterRoutingKey != "":
		p.At(yamlfile.Field(path, "dead_letter_routing_key"), "needs dead_letter_exchange, the exchange to send dead letters to")
	case x == nil:
	case *x == "" && q.DeadLetterRoutingKey == "":
		p.At(xp, "the default exchange routes by routing key: name the dead-letter queue in dead_letter_routing_key")
	case *x != "":
		checkExchange(*x, xp, exchanges, p)
	}
	for _, s := range []struct {
		key, arg string
		set      bool
	}{
		{"delivery_limit", "x-delivery-limit", q.DeliveryLimit > 0},
		{"dead_letter_exchange", "x-dead-letter-exchange", q.DeadLetterExchange != nil},
		{"dead_letter_routing_key", "x-dead-letter-routing-key", q.DeadLetterRoutingKey != ""},
	} {
		if _, both := q.Arguments[s.arg]; both && s.set {
			p.At(yamlfile.Field(yamlfile.Field(path, "arguments"), s.arg), "set by %s as well; keep one", s.key)
		}
	}
}

// checkName checks the name of an exchange or queue and records it in seen.
func checkName(name, what, path string, seen map[string]string, p *yamlfile.Problems) {
	np := yamlfile.Field(path, "name")
	switch {
	case name == "":
		p.Once(np, "required: the %s's name", what)
	case strings.HasPrefix(name, "amq."):
		p.At(np, "%q: RabbitMQ reserves names that start with \"amq.\" and refuses to declare them", name)
	case seen[name] != "":
		p.At(np, "%s %q is declared twice (first at %s)", what, name, seen[name])
	default:
		seen[name] = path
	}
}
