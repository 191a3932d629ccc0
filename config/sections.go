package config

import (
	"fmt"
	"strings"
)

// maxMessageBytes is RabbitMQ's default max_message_size, 128 MiB: the
// broker closes the channel of a publisher that sends anything larger.
const maxMessageBytes = 128 << 20

var topKeys = []string{"server", "descriptors", "broker", "legacy", "defaults", "routes", "topology"}

// config decodes the whole file. root is nil for an empty file.
func (d *decoder) config(root *value) *Config {
	if root != nil && root.kind != mapping && root.kind != null {
		d.p.add("", root.line, fmt.Errorf("a routes file is a mapping of %s; this one is %s", allOf(topKeys), root.kind))
		return &Config{}
	}
	f := d.fields(extensionsOut(root), "", topKeys...)
	d.descriptors, _ = d.strs(f["descriptors"], "descriptors")
	c := &Config{
		Server:   d.server(f["server"], "server"),
		Broker:   d.broker(f["broker"], "broker"),
		Legacy:   d.legacy(f["legacy"], "legacy"),
		Defaults: d.defaults(f["defaults"], "defaults"),
		Routes:   d.routes(f["routes"], "routes"),
		Topology: d.topology(f["topology"], "topology"),
	}
	if len(d.descriptors) == 0 {
		d.p.once("descriptors", "required: list the FileDescriptorSet files that describe the API (made with buf build -o api.binpb, or protoc --include_imports -o)")
	}
	return c
}

// extensionsOut returns root without its top-level keys that start with
// "x-": as in Compose files, they are free for the user, to hold anchors
// that routes merge (x-rpc: &rpc {timeout: 2s}).
func extensionsOut(root *value) *value {
	if root == nil || root.kind != mapping {
		return root
	}
	out := *root
	out.members = nil
	for _, m := range root.members {
		if !strings.HasPrefix(m.key, "x-") {
			out.members = append(out.members, m)
		}
	}
	return &out
}

func (d *decoder) server(v *value, path string) Server {
	f := d.fields(v, path, "grpc", "http", "admin", "max_request_bytes",
		"max_forwarded_value_bytes", "max_forwarded_bytes", "max_header_bytes", "read_header_timeout", "read_timeout",
		"write_timeout", "idle_timeout", "max_connections", "shutdown_grace", "tls", "json",
		"operations_path", "operations_stream", "operations_max", "operations_max_bytes", "operations_key_file", "cors", "openapi_path")
	s := Server{
		GRPC:          d.listen(f["grpc"], field(path, "grpc")),
		HTTP:          d.listen(f["http"], field(path, "http")),
		Admin:         d.listen(f["admin"], field(path, "admin")),
		ShutdownGrace: d.duration(f["shutdown_grace"], field(path, "shutdown_grace")),
		TLS:           d.serverTLS(f["tls"], field(path, "tls")),
		JSON:          d.json(f["json"], field(path, "json")),
		Operations:    d.operations(f, path),
		CORS:          d.cors(f["cors"], field(path, "cors")),
		OpenAPIPath:   d.urlPath(f["openapi_path"], field(path, "openapi_path")),
	}
	s.MaxRequestBytes = d.positive(f["max_request_bytes"], field(path, "max_request_bytes"), maxMessageBytes,
		" (128 MiB), RabbitMQ's default max_message_size: the broker would refuse a larger request")
	const headerNote = " (1 MiB): the broker's frame_max bounds a message's headers (128 KiB by default)"
	s.MaxForwardedValueBytes = d.positive(f["max_forwarded_value_bytes"], field(path, "max_forwarded_value_bytes"), 1<<20, headerNote)
	s.MaxForwardedBytes = d.positive(f["max_forwarded_bytes"], field(path, "max_forwarded_bytes"), 1<<20, headerNote)
	s.MaxHeaderBytes = d.positive(f["max_header_bytes"], field(path, "max_header_bytes"), 1<<20, " (1 MiB)")
	s.MaxConnections = d.positive(f["max_connections"], field(path, "max_connections"), 1<<20, "")
	s.ReadHeaderTimeout = d.duration(f["read_header_timeout"], field(path, "read_header_timeout"))
	s.ReadTimeout = d.duration(f["read_timeout"], field(path, "read_timeout"))
	s.WriteTimeout = d.duration(f["write_timeout"], field(path, "write_timeout"))
	s.IdleTimeout = d.duration(f["idle_timeout"], field(path, "idle_timeout"))
	return s
}

func (d *decoder) json(v *value, path string) JSON {
	f := d.fields(v, path, "proto_names", "emit_unpopulated", "discard_unknown")
	return JSON{
		ProtoNames:      d.boolean(f["proto_names"], field(path, "proto_names")),
		EmitUnpopulated: d.boolean(f["emit_unpopulated"], field(path, "emit_unpopulated")),
		DiscardUnknown:  d.boolean(f["discard_unknown"], field(path, "discard_unknown")),
	}
}

// urlPath reads the path of a document figway serves: "/..." or "off".
func (d *decoder) urlPath(v *value, path string) string {
	s, ok := d.strOK(v, path)
	if ok && s != OpenAPIOff && !strings.HasPrefix(s, "/") {
		d.p.at(path, "%q: want a path starting with \"/\", or off", s)
	}
	return s
}

func (d *decoder) listen(v *value, path string) string {
	s, ok := d.strOK(v, path)
	switch {
	case !ok:
	case s == "":
		d.p.at(path, "empty address; leave the key out for the default")
	default:
		if err := checkListen(s); err != nil {
			d.p.at(path, "%v", err)
		}
	}
	return s
}

func (d *decoder) broker(v *value, path string) Broker {
	if v == nil {
		d.p.at(path, "required: the RabbitMQ to publish to, as url: amqp://user:password@host:5672/")
		return Broker{}
	}
	f := d.fields(v, path, "url", "urls", "reply", "channels", "heartbeat", "dial_timeout", "tls")
	b := Broker{
		Reply:       enum(d, f["reply"], field(path, "reply"), ReplyDirect, ReplyQueue),
		Channels:    d.positive(f["channels"], field(path, "channels"), 64, ": more channels add no throughput on one connection"),
		Heartbeat:   d.duration(f["heartbeat"], field(path, "heartbeat")),
		DialTimeout: d.duration(f["dial_timeout"], field(path, "dial_timeout")),
		TLS:         d.brokerTLS(f["tls"], field(path, "tls")),
	}
	url, urls := f["url"], f["urls"]
	switch {
	case url != nil && urls != nil:
		d.p.at(field(path, "urls"), "set url or urls, not both")
	case url != nil:
		p := field(path, "url")
		if s, ok := d.strOK(url, p); ok {
			b.URLs = []string{s}
			if err := checkAMQP(s); err != nil {
				d.p.at(p, "%v", err)
			}
		}
	case urls != nil:
		p := field(path, "urls")
		items, _ := d.strs(urls, p)
		for _, it := range items {
			b.URLs = append(b.URLs, it.s)
			if err := checkAMQP(it.s); err != nil {
				d.p.at(it.path, "%v", err)
			}
		}
		if urls.kind == sequence && len(urls.items) == 0 {
			d.p.at(p, "empty list; want at least one amqp:// or amqps:// URL")
		}
	default:
		d.p.at(path, "needs url (one amqp:// or amqps:// URL) or urls (a list, tried in turn)")
	}
	return b
}

func (d *decoder) legacy(v *value, path string) Legacy {
	f := d.fields(v, path, "grpc", "http")
	l := Legacy{
		GRPC: d.str(f["grpc"], field(path, "grpc")),
		HTTP: d.str(f["http"], field(path, "http")),
	}
	if l.GRPC != "" {
		if err := checkDial(l.GRPC); err != nil {
			d.p.at(field(path, "grpc"), "%v", err)
		}
	}
	if l.HTTP != "" {
		if err := checkHTTPURL(l.HTTP); err != nil {
			d.p.at(field(path, "http"), "%v", err)
		}
	}
	return l
}

func (d *decoder) defaults(v *value, path string) Defaults {
	f := d.fields(v, path, "timeout", "max_in_flight", "breaker", "forward_headers", "wire", "async", "pin_by", "response_headers")
	return Defaults{
		Timeout:         d.duration(f["timeout"], field(path, "timeout")),
		MaxInFlight:     d.positive(f["max_in_flight"], field(path, "max_in_flight"), maxInFlight, ""),
		Breaker:         d.breaker(f["breaker"], field(path, "breaker")),
		ForwardHeaders:  d.headers(f["forward_headers"], field(path, "forward_headers")),
		Wire:            d.wire(f["wire"], field(path, "wire")),
		Async:           d.async(f["async"], field(path, "async")),
		PinBy:           d.header(f["pin_by"], field(path, "pin_by")),
		ResponseHeaders: d.responseHeaders(f["response_headers"], field(path, "response_headers")),
	}
}

func (d *decoder) wire(v *value, path string) Wire {
	f := d.fields(v, path, "cloudevents")
	return Wire{
		CloudEvents: enum(d, f["cloudevents"], field(path, "cloudevents"), CloudEventsEvents, CloudEventsAlways),
	}
}

// maxInFlight bounds max_in_flight at a million waiting calls, far more
// than one instance can hold, to catch a slipped digit.
const maxInFlight = 1_000_000
