package config

import "github.com/figway/figway/config/yamlfile"

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
