package config

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

func (d *decoder) topology(v *value, path string) Topology {
	f := d.fields(v, path, "exchanges", "queues")
	var t Topology
	ep := field(path, "exchanges")
	items, _ := d.items(f["exchanges"], ep)
	for i, it := range items {
		p := index(ep, i)
		ef := d.object(it, p, "name", "type", "durable")
		t.Exchanges = append(t.Exchanges, Exchange{
			Name:    d.str(ef["name"], field(p, "name")),
			Type:    enum(d, ef["type"], field(p, "type"), "direct", "topic", "fanout", "headers"),
			Durable: d.optBool(ef["durable"], field(p, "durable")),
		})
	}
	qp := field(path, "queues")
	items, _ = d.items(f["queues"], qp)
	for i, it := range items {
		p := index(qp, i)
		qf := d.object(it, p, "name", "type", "durable", "bind", "arguments")
		t.Queues = append(t.Queues, Queue{
			Name:      d.str(qf["name"], field(p, "name")),
			Type:      enum(d, qf["type"], field(p, "type"), "classic", "quorum"),
			Durable:   d.optBool(qf["durable"], field(p, "durable")),
			Bind:      d.bindings(qf["bind"], field(p, "bind")),
			Arguments: d.arguments(qf["arguments"], field(p, "arguments")),
		})
	}
	return t
}

func (d *decoder) optBool(v *value, path string) *bool {
	if v == nil {
		return nil
	}
	b := d.boolean(v, path)
	return &b
}

// bindings decodes bind: one mapping, or a list of them. validate knows
// a single mapping as bind[0] and reports it as bind.
func (d *decoder) bindings(v *value, path string) []Binding {
	if v == nil {
		return nil
	}
	if v.kind == mapping {
		d.p.renames[index(path, 0)] = path
		return []Binding{d.binding(v, path)}
	}
	items, ok := d.items(v, path)
	if !ok {
		return nil
	}
	bs := make([]Binding, 0, len(items))
	for i, it := range items {
		bs = append(bs, d.binding(it, index(path, i)))
	}
	return bs
}

func (d *decoder) binding(v *value, path string) Binding {
	f := d.object(v, path, "exchange", "key")
	return Binding{
		Exchange: d.str(f["exchange"], field(path, "exchange")),
		Key:      d.str(f["key"], field(path, "key")),
	}
}

// arguments decodes the queue.declare arguments into the types an AMQP
// table holds.
func (d *decoder) arguments(v *value, path string) map[string]any {
	if v == nil {
		return nil
	}
	if v.kind != mapping {
		d.wrongType(v, path, "a mapping of x-arguments")
		return nil
	}
	args := make(map[string]any, len(v.members))
	for _, m := range v.members {
		p := field(path, m.key)
		d.p.lines[p] = m.line
		if m.key == "x-queue-type" {
			d.p.add(p, m.line, fmt.Errorf("set the queue's type instead"))
			continue
		}
		if a, ok := d.tableValue(m.val, p); ok {
			args[m.key] = a
		}
	}
	return args
}

func (d *decoder) tableValue(v *value, path string) (any, bool) {
	switch v.kind {
	case null:
		return nil, true
	case sequence:
		list := make([]any, 0, len(v.items))
		for i, it := range v.items {
			if a, ok := d.tableValue(it, index(path, i)); ok {
				list = append(list, a)
			}
		}
		return list, true
	case mapping:
		table := make(map[string]any, len(v.members))
		for _, m := range v.members {
			if a, ok := d.tableValue(m.val, field(path, m.key)); ok {
				table[m.key] = a
			}
		}
		return table, true
	}
	if u, ok := v.v.(uint64); ok && u > math.MaxInt64 {
		d.p.add(path, v.line, fmt.Errorf("%d does not fit the 64-bit signed integer of an AMQP table", u))
		return nil, false
	}
	return v.v, true
}

// predefined are the exchanges every RabbitMQ virtual host has.
var predefined = []string{"amq.direct", "amq.fanout", "amq.headers", "amq.match", "amq.topic", "amq.rabbitmq.trace"}

// validateTopology checks names and that bindings refer to exchanges that
// will exist. It runs after defaults.
func validateTopology(t *Topology, p *problems, broken map[string]bool) {
	exchanges := map[string]string{} // name → path
	for i, e := range t.Exchanges {
		path := index("topology.exchanges", i)
		if broken[path] {
			continue
		}
		checkName(e.Name, "exchange", path, exchanges, p)
		if e.Type == "" {
			p.once(field(path, "type"), "required: direct, topic, fanout or headers")
		}
	}
	queues := map[string]string{}
	for i, q := range t.Queues {
		path := index("topology.queues", i)
		if broken[path] {
			continue
		}
		checkName(q.Name, "queue", path, queues, p)
		if q.Type == "quorum" && q.Durable != nil && !*q.Durable {
			p.at(field(path, "durable"), "quorum queues are always durable; leave durable out")
		}
		for j, b := range q.Bind {
			bp := index(field(path, "bind"), j)
			if broken[bp] {
				continue
			}
			switch {
			case b.Exchange == "":
				p.once(field(bp, "exchange"), "required: the exchange to bind to (the default exchange, \"\", already routes to every queue by its name)")
			case exchanges[b.Exchange] != "" || slices.Contains(predefined, b.Exchange):
			default:
				msg := fmt.Sprintf("exchange %q is not declared in topology.exchanges nor one of RabbitMQ's predefined amq.* exchanges", b.Exchange)
				if s := suggest(b.Exchange, slices.Concat(slices.Sorted(maps.Keys(exchanges)), predefined)); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				p.at(field(bp, "exchange"), "%s", msg)
			}
		}
	}
}

// checkName checks the name of an exchange or queue and records it in seen.
func checkName(name, what, path string, seen map[string]string, p *problems) {
	np := field(path, "name")
	switch {
	case name == "":
		p.once(np, "required: the %s's name", what)
	case strings.HasPrefix(name, "amq."):
		p.at(np, "%q: RabbitMQ reserves names that start with \"amq.\" and refuses to declare them", name)
	case seen[name] != "":
		p.at(np, "%s %q is declared twice (first at %s)", what, name, seen[name])
	default:
		seen[name] = path
	}
}
