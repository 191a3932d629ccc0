package config

import (
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/figway/figway/adapters/amqp"
	"github.com/figway/figway/auth"
	"github.com/figway/figway/gateway"
)

// Config is a loaded, defaulted and validated routes file. [Load] and [Parse]
// return one only when the file has no problem at all; every field below then
// holds its effective value, defaults applied.
type Config struct {
	Server Server

	// Descriptors are the absolute paths of the FileDescriptorSet files
	// named by the YAML key descriptors (relative there to the routes file).
	Descriptors []string

	// Files holds every file of every set in Descriptors, plus the imports
	// they lack that figway itself is built with (google/protobuf/*.proto,
	// google/api/*.proto).
	Files *protoregistry.Files

	Broker Broker
	Legacy Legacy
	// Defaults are what every route inherits for the settings it leaves
	// out (YAML key: defaults): a Route that sets only the keys marked
	// inherited in the schema, with their built-in defaults applied.
	Defaults Route
	Routes   []Route
	Topology Topology
}

// Route returns the route of a full gRPC method name, written either as
// "orders.v1.OrderService/GetOrder" or, as gRPC servers see it, with a
// leading slash.
func (c *Config) Route(method string) (*Route, bool) {
	method = strings.TrimPrefix(method, "/")
	for i := range c.Routes {
		if c.Routes[i].Method == method {
			return &c.Routes[i], true
		}
	}
	return nil, false
}

// Server configures figway's listeners. YAML key: server.
type Server struct {
	// GRPC is the gRPC ingress listen address, host:port. It also serves
	// grpc.health.v1 and server reflection. If GRPC is empty,
	// 127.0.0.1:8080 is used.
	GRPC string

	// HTTP is the REST/JSON ingress listen address, host:port. If HTTP is
	// empty, 127.0.0.1:8081 is used.
	HTTP string

	// Admin is the listen address of /metrics, /healthz and /readyz,
	// host:port. If Admin is empty, 127.0.0.1:9090 is used.
	Admin string

	// MaxRequestBytes is the largest request body accepted, in bytes
	// (YAML max_request_bytes). It may not exceed 128 MiB, RabbitMQ's
	// default max_message_size. If MaxRequestBytes is 0, 4 MiB is used.
	MaxRequestBytes int

	// MaxForwardedValueBytes is the largest value of one header named in
	// forward_headers that a call may forward, in bytes (YAML
	// max_forwarded_value_bytes); a call with a larger one fails with
	// RESOURCE_EXHAUSTED (HTTP 431) and is not published. At most 1 MiB.
	// If MaxForwardedValueBytes is 0, 8 KiB is used.
	MaxForwardedValueBytes int

	// MaxForwardedBytes bounds all forwarded headers of one call together,
	// names and values as they go on the message, in bytes (YAML
	// max_forwarded_bytes); a call over it fails as above. At most 1 MiB.
	// Whatever these allow, a call whose message headers would not fit the
	// broker's negotiated frame_max fails the same way. If
	// MaxForwardedBytes is 0, 32 KiB is used.
	MaxForwardedBytes int

	// MaxHeaderBytes bounds the headers of one request, in bytes (YAML
	// max_header_bytes): gRPC's header list (larger: the stream is reset)
	// and HTTP's request headers (larger: 431). At most 1 MiB. If
	// MaxHeaderBytes is 0, 64 KiB is used.
	MaxHeaderBytes int

	// ReadHeaderTimeout bounds the reading of a REST request's headers
	// (YAML read_header_timeout). If ReadHeaderTimeout is 0, 10s is used.
	ReadHeaderTimeout time.Duration

	// ReadTimeout bounds the reading of a whole REST request, headers and
	// body (YAML read_timeout); a broker route's body must also arrive
	// within the call's deadline. If ReadTimeout is 0, 30s is used.
	ReadTimeout time.Duration

	// WriteTimeout bounds the writing of a REST answer past the call's
	// deadline (YAML write_timeout): a client that does not read its
	// answer is cut then. If WriteTimeout is 0, 10s is used.
	WriteTimeout time.Duration

	// IdleTimeout closes a REST keep-alive connection, or a gRPC
	// connection with no call, idle that long (YAML idle_timeout). If
	// IdleTimeout is 0, 1m is used.
	IdleTimeout time.Duration

	// MaxConnections caps the connections each ingress (gRPC, REST) holds
	// open; past it, new ones wait in the kernel's accept queue until one
	// closes (YAML max_connections). If MaxConnections is 0, figway uses
	// its descriptor limit less 256, halved, at most 16384, at least 64.
	MaxConnections int

	// ShutdownGrace is how long in-flight calls may take to finish once
	// shutdown begins (YAML shutdown_grace). If ShutdownGrace is 0, 10s is
	// used.
	ShutdownGrace time.Duration

	// TLS, if not nil, makes the gRPC and HTTP listeners TLS only.
	TLS *ServerTLS

	// JSON sets how the REST ingress reads and writes JSON (YAML json).
	JSON JSON

	// Operations configures the async operations of routes with async
	// (YAML operations_path, operations_stream, operations_max,
	// operations_max_bytes, operations_key_file).
	Operations Operations

	// CORS, if not nil, is the REST ingress's cross-origin policy (YAML
	// cors). If CORS is nil, figway adds no CORS headers and passes
	// preflight requests on like any other.
	CORS *CORS

	// OpenAPIPath is the path on the REST listener that serves the
	// OpenAPI document of the REST bindings (YAML openapi_path). If
	// OpenAPIPath is empty, /openapi.json is used; "off" serves none.
	OpenAPIPath string

	// RampStream is the RabbitMQ stream queue that holds the ramps' state
	// (YAML ramp_stream), declared when a route has a ramp. If RampStream
	// is empty, figway.ramps is used.
	RampStream string

	// AdminTokenFile is a file whose content (trimmed) an admin mutation,
	// such as POST /v1/ramps/{method}:pause, must carry as a bearer token
	// when the admin listener is not on loopback (YAML admin_token_file;
	// relative to the routes file). Without it, such a listener refuses
	// every mutation.
	AdminTokenFile string

	// AdminToken is the content of AdminTokenFile, read at load time.
	AdminToken []byte
}

// OpenAPIOff is the OpenAPIPath that serves no OpenAPI document.
const OpenAPIOff = "off"

// JSON sets the REST ingress's JSON conventions. YAML key: server.json.
// The zero value is protojson's: lowerCamelCase names, zero values left
// out, unknown fields refused with 400.
type JSON struct {
	// ProtoNames renders replies with the proto field names (order_id)
	// instead of lowerCamelCase (orderId); requests accept both always.
	// YAML proto_names.
	ProtoNames bool
	// EmitUnpopulated renders fields at their zero value too. YAML
	// emit_unpopulated.
	EmitUnpopulated bool
	// DiscardUnknown ignores JSON fields and query parameters that name no
	// request field, instead of answering 400. YAML discard_unknown.
	DiscardUnknown bool
}

// ReplyMode selects how replies come back from RabbitMQ: YAML
// broker.reply, direct or queue.
type ReplyMode = amqp.ReplyMode

// The values of broker.reply.
const (
	ReplyDirect = amqp.ReplyDirect
	ReplyQueue  = amqp.ReplyQueue
)

// Broker configures the RabbitMQ connection. YAML key: broker.
type Broker struct {
	// URLs are amqp:// or amqps:// URIs, tried in turn on every (re)connect.
	// YAML sets them with exactly one of url (a string) or urls (a list).
	// They may hold a password: print them only through [Redact].
	URLs []string

	// Reply is how replies come back. If Reply is empty, ReplyDirect is used.
	Reply ReplyMode

	// Channels is the number of AMQP channels used for publishing, 1 to 64.
	// If Channels is 0, 4 is used.
	Channels int

	// Heartbeat is the AMQP heartbeat interval; a connection silent for one
	// and a half intervals is declared dead. If Heartbeat is 0, 2s is used.
	Heartbeat time.Duration

	// DialTimeout bounds one connection attempt, TCP and AMQP handshake
	// together (YAML dial_timeout). If DialTimeout is 0, 5s is used.
	DialTimeout time.Duration

	// StallTimeout is how long publishes may wait with no publisher
	// confirm arriving on the connection before figway leaves the node as
	// stalled (YAML stall_timeout). If StallTimeout is 0, 3s is used.
	StallTimeout time.Duration

	// TLS, if not nil, configures TLS to the broker; the URLs must then
	// be amqps://.
	TLS *BrokerTLS
}

// Legacy names the services that calls go to when no route migrates them
// (YAML key: legacy). Both are optional; a route with to: legacy or
// fallback: legacy needs at least one.
type Legacy struct {
	// GRPC is the legacy gRPC server, host:port. If GRPC is empty, gRPC
	// calls without a route are answered UNIMPLEMENTED.
	GRPC string

	// HTTP is the legacy REST service, an absolute http:// or https:// URL.
	// If HTTP is empty, REST calls without a route are answered 404.
	HTTP string
}

// Wire shapes the messages a route publishes, where the wire protocol
// (docs/wire-protocol.md) leaves a choice.
type Wire struct {
	// CloudEvents says which messages carry the cloudEvents:* headers
	// (YAML cloudevents). If CloudEvents is empty on a route,
	// Defaults.Wire.CloudEvents is used; if that is empty too,
	// CloudEventsEvents.
	CloudEvents CloudEvents
}

// CloudEvents says which of a route's messages carry the CloudEvents
// attributes as cloudEvents:* headers.
type CloudEvents string

const (
	// CloudEventsEvents: events only (pattern: event and shadow copies).
	// rpc requests carry the AMQP properties the attributes repeat.
	CloudEventsEvents CloudEvents = "events"
	// CloudEventsAlways: rpc requests too.
	CloudEventsAlways CloudEvents = "always"
)

// The route enums are the gateway's own; the routes file writes their
// values as they are (to: broker, pattern: event, encoding: json, retry:
// idempotent).
type (
	// Retry says when a broker route may publish a call a second time.
	Retry = gateway.Retry
	// Target is where a route sends its calls.
	Target = gateway.Target
	// Pattern is how a broker route answers its caller.
	Pattern = gateway.Pattern
	// Encoding is the body format of the messages a route publishes.
	Encoding = gateway.Encoding
)

// The values of the route enums.
const (
	RetryIdempotent  = gateway.RetryIdempotent
	TargetBroker     = gateway.TargetBroker
	TargetLegacy     = gateway.TargetLegacy
	PatternRPC       = gateway.PatternRPC
	PatternEvent     = gateway.PatternEvent
	EncodingProtobuf = gateway.EncodingProtobuf
	EncodingJSON     = gateway.EncodingJSON
)

// Route says what becomes of the calls of one gRPC method. YAML: one item
// of routes, decoded with the schema of config/routes.go. Its settings are
// the gateway's own [gateway.RouteSpec], which documents each with its
// YAML key and default; Route adds what only the routes file says.
type Route struct {
	gateway.RouteSpec

	// Queue names the queue whose consumers serve the route, for when
	// figway's topology does not bind it (YAML queue). If Queue is empty,
	// the topology's bindings say ([Config.Queues]). figway watches the
	// consumers of a route's queues: an rpc call to a route whose queues
	// have none fails at once (docs/errors.md).
	Queue string

	// Wire is what the route's messages carry beyond what the wire
	// protocol requires; each field left empty takes defaults.wire's.
	Wire Wire

	// Auth, if not nil, requires a valid bearer token of every call, on
	// any target, and turns its claims into headers (YAML auth.jwt); it
	// becomes the gateway's RouteSpec.Auth with the key sets. If the key is
	// left out, defaults.auth is used whole; YAML auth: off uses none.
	Auth *auth.JWT

	// RateLimit, if not nil, bounds the calls of each caller (YAML
	// rate_limit). If the key is left out, defaults.rate_limit is used
	// whole; YAML rate_limit: off uses none.
	RateLimit *RateLimit

	// AuthOff and RateLimitOff: the route wrote auth: off or
	// rate_limit: off, and inherits none from defaults.
	AuthOff, RateLimitOff bool
}

// HTTPRule is a REST binding (YAML http: one of get, put, post, delete,
// patch or custom: {kind, path}, with body and response_body), in the
// gateway's own type.
type HTTPRule = gateway.HTTPRule

// Topology is what figway declares on RabbitMQ at start and after every
// reconnect (YAML key: topology), in the AMQP adapter's own types. It may
// be empty when the services declare their own.
type (
	Topology = amqp.Topology
	Exchange = amqp.Exchange
	Queue    = amqp.Queue
	Binding  = amqp.Binding
)
