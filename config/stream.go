package config

import (
	"github.com/figway/figway/config/yamlfile"
	"github.com/figway/figway/gateway"
)

// validateStreaming checks a route of a streaming method (r.Desc is set):
// a server-streaming method may go to the broker, its replies a stream
// (docs/wire-protocol.md, "Streaming replies"); client and bidirectional
// streams only pass through to legacy.
func validateStreaming(r *Route, path string, p *yamlfile.Problems) {
	kind := streaming(r.Desc)
	mp := yamlfile.Field(path, "method")
	switch {
	case kind == "":
		return
	case kind != "server-streaming" && r.To == TargetBroker:
		p.At(mp, "%s is %s; only unary and server-streaming methods can be bridged to RabbitMQ; use to: legacy", r.Method, kind)
		return
	case r.Shadow:
		// Which messages of two streams to compare, and when a stream's
		// copy is done, have no answer that fits every method: migrate a
		// stream with weight and pin_by instead (docs/migration.md).
		p.At(yamlfile.Field(path, "shadow"), "%s is %s: its calls cannot be shadowed; migrate it with weight or pin_by on a broker route", r.Method, kind)
		return
	case r.To != TargetBroker:
		return
	}
	if r.Pattern == PatternEvent {
		p.At(yamlfile.Field(path, "pattern"), "%s is server-streaming: its worker answers with a stream; leave pattern out or set it to rpc", r.Method)
	}
	if r.Fallback == TargetLegacy {
		p.At(yamlfile.Field(path, "fallback"), "%s is server-streaming: fallback: legacy is for unary routes; a stream refused by the broker fails UNAVAILABLE", r.Method)
	}
}

// streamBounds decodes a route's stream key: the bounds of each stream of
// a server-streaming route (docs/operations.md, "Limits and timeouts").
func (d *decoder) streamBounds(v *yamlfile.Value, path string) gateway.StreamBounds {
	f := d.Fields(v, path, "max_messages", "max_bytes", "idle")
	return gateway.StreamBounds{
		Messages: d.Positive(f["max_messages"], yamlfile.Field(path, "max_messages"), 1_000_000, ""),
		Bytes:    d.Positive(f["max_bytes"], yamlfile.Field(path, "max_bytes"), 1<<30, " (1 GiB)"),
		Idle:     d.Duration(f["idle"], yamlfile.Field(path, "idle")),
	}
}
