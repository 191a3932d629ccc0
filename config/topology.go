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
		qf := d.object(it, p, "name", "type", "durable", "bind", "arguments")
		t.Queues = append(t.Queues, Queue{
			Name:      d.Str(qf["name"], yamlfile.Field(p, "name")),
			Type:      yamlfile.Enum(d.Decoder, qf["type"], yamlfile.Field(p, "type"), "classic", "quorum"),
			Durable:   d.optBool(qf["durable"], yamlfile.Field(p, "durable")),
			Bind:      d.bindings(qf["bind"], yamlfile.Field(p, "bind")),
			Arguments: d.arguments(qf["arguments"], yamlfile.Field(p, "arguments")),
		})
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
		for j, b := range q.Bind {
			bp := yamlfile.Index(yamlfile.Field(path, "bind"), j)
			if broken[bp] {
				continue
			}
			switch {
			case b.Exchange == "":
				p.Once(yamlfile.Field(bp, "exchange"), "required: the exchange to bind to (the default exchange, \"\", already routes to every queue by its name)")
			case exchanges[b.Exchange] != "" || slices.Contains(predefined, b.Exchange):
			default:
				msg := fmt.Sprintf("exchange %q is not declared in topology.exchanges nor one of RabbitMQ's predefined amq.* exchanges", b.Exchange)
				if s := yamlfile.Suggest(b.Exchange, slices.Concat(slices.Sorted(maps.Keys(exchanges)), predefined)); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				p.At(yamlfile.Field(bp, "exchange"), "%s", msg)
			}
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
