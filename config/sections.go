package config

import (
	"fmt"
	"strings"

	"github.com/figway/figway/config/yamlfile"
)

// maxMessageBytes is RabbitMQ's default max_message_size, 128 MiB: the
// broker closes the channel of a publisher that sends anything larger.
const maxMessageBytes = 128 << 20

var topKeys = []string{"server", "descriptors", "broker", "legacy", "defaults", "routes", "topology"}

// config decodes the whole file. root is nil for an empty file.
func (d *decoder) config(root *yamlfile.Value) *Config {
	if root != nil && root.Kind != yamlfile.Mapping && root.Kind != yamlfile.Null {
		d.P.Add("", root.Line, fmt.Errorf("a routes file is a mapping of %s; this one is %s", yamlfile.AllOf(topKeys), root.Kind))
		return &Config{}
	}
	f := d.Fields(extensionsOut(root), "", topKeys...)
	d.descriptors, _ = d.Strs(f["descriptors"], "descriptors")
	c := &Config{
		Server:   d.server(f["server"], "server"),
		Broker:   d.broker(f["broker"], "broker"),
		Legacy:   d.legacy(f["legacy"], "legacy"),
		Defaults: d.defaults(f["defaults"], "defaults"),
		Routes:   d.routes(f["routes"], "routes"),
		Topology: d.topology(f["topology"], "topology"),
	}
	if len(d.descriptors) == 0 {
		d.P.Once("descriptors", "required: list the FileDescriptorSet files that describe the API (made with buf build -o api.binpb, or protoc --include_imports -o)")
	}
	return c
}

// extensionsOut returns root without its top-level keys that start with
// "x-": as in Compose files, they are free for the user, to hold anchors
// that routes merge (x-rpc: &rpc {timeout: 2s}).
func extensionsOut(root *yamlfile.Value) *yamlfile.Value {
	if root == nil || root.Kind != yamlfile.Mapping {
		return root
	}
	out := *root
	out.Members = nil
	for _, m := range root.Members {
		if !strings.HasPrefix(m.Key, "x-") {
			out.Members = append(out.Members, m)
		}
	}
	return &out
}

func (d *decoder) server(v *yamlfile.Value, path string) Server {
	f := d.Fields(v, path, "grpc", "http", "admin", "max_request_bytes",
		"max_forwarded_value_bytes", "max_forwarded_bytes", "max_header_bytes", "read_header_timeout", "read_timeout",
		"write_timeout", "idle_timeout", "max_connections", "shutdown_grace", "tls", "json",
		"operations_path", "operations_stream", "operations_max", "operations_max_bytes", "operations_key_file", "cors", "openapi_path",
		"ramp_stream", "admin_token_file")
	s := Server{
		GRPC:           d.listen(f["grpc"], yamlfile.Field(path, "grpc")),
		HTTP:           d.listen(f["http"], yamlfile.Field(path, "http")),
		Admin:          d.listen(f["admin"], yamlfile.Field(path, "admin")),
		ShutdownGrace:  d.Duration(f["shutdown_grace"], yamlfile.Field(path, "shutdown_grace")),
		TLS:            d.serverTLS(f["tls"], yamlfile.Field(path, "tls")),
		JSON:           d.json(f["json"], yamlfile.Field(path, "json")),
		Operations:     d.operations(f, path),
		CORS:           d.cors(f["cors"], yamlfile.Field(path, "cors")),
		OpenAPIPath:    d.urlPath(f["openapi_path"], yamlfile.Field(path, "openapi_path")),
		RampStream:     d.Str(f["ramp_stream"], yamlfile.Field(path, "ramp_stream")),
		AdminTokenFile: d.Str(f["admin_token_file"], yamlfile.Field(path, "admin_token_file")),
	}
	if st := s.RampStream; strings.HasPrefix(st, "amq.") {
		d.P.At(yamlfile.Field(path, "ramp_stream"), "%q starts with amq., RabbitMQ's reserved prefix", st)
	}
	s.MaxRequestBytes = d.Positive(f["max_request_bytes"], yamlfile.Field(path, "max_request_bytes"), maxMessageBytes,
		" (128 MiB), RabbitMQ's default max_message_size: the broker would refuse a larger request")
	const headerNote = " (1 MiB): the broker's frame_max bounds a message's headers (128 KiB by default)"
	s.MaxForwardedValueBytes = d.Positive(f["max_forwarded_value_bytes"], yamlfile.Field(path, "max_forwarded_value_bytes"), 1<<20, headerNote)
	s.MaxForwardedBytes = d.Positive(f["max_forwarded_bytes"], yamlfile.Field(path, "max_forwarded_bytes"), 1<<20, headerNote)
	s.MaxHeaderBytes = d.Positive(f["max_header_bytes"], yamlfile.Field(path, "max_header_bytes"), 1<<20, " (1 MiB)")
	s.MaxConnections = d.Positive(f["max_connections"], yamlfile.Field(path, "max_connections"), 1<<20, "")
	s.ReadHeaderTimeout = d.Duration(f["read_header_timeout"], yamlfile.Field(path, "read_header_timeout"))
	s.ReadTimeout = d.Duration(f["read_timeout"], yamlfile.Field(path, "read_timeout"))
	s.WriteTimeout = d.Duration(f["write_timeout"], yamlfile.Field(path, "write_timeout"))
	s.IdleTimeout = d.Duration(f["idle_timeout"], yamlfile.Field(path, "idle_timeout"))
	return s
}

func (d *decoder) json(v *yamlfile.Value, path string) JSON {
	f := d.Fields(v, path, "proto_names", "emit_unpopulated", "discard_unknown")
	return JSON{
		ProtoNames:      d.Bool(f["proto_names"], yamlfile.Field(path, "proto_names")),
		EmitUnpopulated: d.Bool(f["emit_unpopulated"], yamlfile.Field(path, "emit_unpopulated")),
		DiscardUnknown:  d.Bool(f["discard_unknown"], yamlfile.Field(path, "discard_unknown")),
	}
}

// urlPath reads the path of a document figway serves: "/..." or "off".
func (d *decoder) urlPath(v *yamlfile.Value, path string) string {
	s, ok := d.StrOK(v, path)
	if ok && s != OpenAPIOff && !strings.HasPrefix(s, "/") {
		d.P.At(path, "%q: want a path starting with \"/\", or off", s)
	}
	return s
}

func (d *decoder) listen(v *yamlfile.Value, path string) string {
	s, ok := d.StrOK(v, path)
	switch {
	case !ok:
	case s == "":
		d.P.At(path, "empty address; leave the key out for the default")
	default:
		if err := checkListen(s); err != nil {
			d.P.At(path, "%v", err)
		}
	}
	return s
}

func (d *decoder) broker(v *yamlfile.Value, path string) Broker {
	if v == nil {
		d.P.At(path, "required: the RabbitMQ to publish to, as url: amqp://user:password@host:5672/")
		return Broker{}
	}
	f := d.Fields(v, path, "url", "urls", "reply", "channels", "heartbeat", "dial_timeout", "stall_timeout", "tls")
	b := Broker{
		Reply:        yamlfile.Enum(d.Decoder, f["reply"], yamlfile.Field(path, "reply"), ReplyDirect, ReplyQueue),
		Channels:     d.Positive(f["channels"], yamlfile.Field(path, "channels"), 64, ": more channels add no throughput on one connection"),
		Heartbeat:    d.Duration(f["heartbeat"], yamlfile.Field(path, "heartbeat")),
		DialTimeout:  d.Duration(f["dial_timeout"], yamlfile.Field(path, "dial_timeout")),
		StallTimeout: d.Duration(f["stall_timeout"], yamlfile.Field(path, "stall_timeout")),
		TLS:          d.brokerTLS(f["tls"], yamlfile.Field(path, "tls")),
	}
	url, urls := f["url"], f["urls"]
	switch {
	case url != nil && urls != nil:
		d.P.At(yamlfile.Field(path, "urls"), "set url or urls, not both")
	case url != nil:
		p := yamlfile.Field(path, "url")
		if s, ok := d.StrOK(url, p); ok {
			b.URLs = []string{s}
			if err := checkAMQP(s); err != nil {
				d.P.At(p, "%v", err)
			}
		}
	case urls != nil:
		p := yamlfile.Field(path, "urls")
		items, _ := d.Strs(urls, p)
		for _, it := range items {
			b.URLs = append(b.URLs, it.S)
			if err := checkAMQP(it.S); err != nil {
				d.P.At(it.Path, "%v", err)
			}
		}
		if urls.Kind == yamlfile.Sequence && len(urls.Items) == 0 {
			d.P.At(p, "empty list; want at least one amqp:// or amqps:// URL")
		}
	default:
		d.P.At(path, "needs url (one amqp:// or amqps:// URL) or urls (a list, tried in turn)")
	}
	return b
}

func (d *decoder) legacy(v *yamlfile.Value, path string) Legacy {
	f := d.Fields(v, path, "grpc", "http")
	l := Legacy{
		GRPC: d.Str(f["grpc"], yamlfile.Field(path, "grpc")),
		HTTP: d.Str(f["http"], yamlfile.Field(path, "http")),
	}
	if l.GRPC != "" {
		if err := checkDial(l.GRPC); err != nil {
			d.P.At(yamlfile.Field(path, "grpc"), "%v", err)
		}
	}
	if l.HTTP != "" {
		if err := checkHTTPURL(l.HTTP); err != nil {
			d.P.At(yamlfile.Field(path, "http"), "%v", err)
		}
	}
	return l
}

func (d *decoder) wire(v *yamlfile.Value, path string) Wire {
	f := d.Fields(v, path, "cloudevents")
	return Wire{
		CloudEvents: yamlfile.Enum(d.Decoder, f["cloudevents"], yamlfile.Field(path, "cloudevents"), CloudEventsEvents, CloudEventsAlways),
	}
}

// maxInFlight bounds max_in_flight at a million waiting calls, far more
// than one instance can hold, to catch a slipped digit.
const maxInFlight = 1_000_000
