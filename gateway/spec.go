package gateway

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// DefaultMaxRequestBytes is the largest request message the ingresses
// accept when they are given no limit: 4 MiB.
const DefaultMaxRequestBytes = 4 << 20

// The bounds on what one call may send, and on slow and idle clients, that
// the gateway and the ingresses use when given none (docs/operations.md,
// "Limits and timeouts").
const (
	// DefaultMaxForwardedValueBytes bounds one forwarded header value.
	DefaultMaxForwardedValueBytes = 8 << 10
	// DefaultMaxForwardedBytes bounds all forwarded headers of a call.
	DefaultMaxForwardedBytes = 32 << 10
	// DefaultMaxHeaderBytes bounds a request's headers (gRPC metadata,
	// HTTP headers).
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultReadHeaderTimeout bounds the reading of a REST request's
	// headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds the reading of a whole REST request.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds the writing of a REST answer past the
	// call's deadline.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultIdleTimeout closes a connection with no call that long.
	DefaultIdleTimeout = time.Minute
)

// RouteSpec is one route as the gateway takes it: what becomes of the calls
// of one method. It is also the routes file's schema: config decodes each
// item of routes (and defaults) into it, under the YAML key named on each
// field, applies the defaults and validates (docs/configuration.md says
// what each setting means in the file).
type RouteSpec struct {
	// Method is the full method name, "orders.v1.OrderService/GetOrder".
	Method string
	// Desc is Method as found in the table's descriptors.
	Desc protoreflect.MethodDescriptor

	// To is where calls go (YAML to). If To is empty, TargetBroker is used.
	To Target
	// Exchange is the exchange a route that publishes publishes to; empty
	// means RabbitMQ's default exchange, where the routing key names a
	// queue.
	Exchange string
	// RoutingKey is the routing key of the published message (YAML
	// routing_key). A broker route and a shadowing legacy route need one.
	RoutingKey string
	// Pattern is how a broker route answers. If Pattern is empty,
	// PatternRPC is used for a broker route and PatternEvent for a
	// shadowing one; it stays empty on other legacy routes.
	Pattern Pattern
	// Timeout bounds each call; 0 leaves only the caller's deadline. In
	// the routes file, a route that leaves it out inherits defaults.timeout
	// (5s if that is left out too).
	Timeout time.Duration
	// Encoding is the body format on the wire. If Encoding is empty,
	// EncodingProtobuf is used on routes that publish; it stays empty on
	// legacy routes that do not shadow.
	Encoding Encoding
	// Forward lists the lower-case metadata keys / header names copied to
	// the message as figway-md-<key> (YAML forward_headers). A route that
	// leaves the key out inherits defaults.forward_headers; YAML [] forwards
	// none.
	Forward []string
	// ForwardLimits bound what Forward may put in one call's message
	// (server.max_forwarded_value_bytes, server.max_forwarded_bytes).
	ForwardLimits HeaderLimits
	// HTTP, if not nil, adds a REST binding to the method or replaces its
	// google.api.http rule (YAML http).
	HTTP *HTTPRule
	// CloudEvents puts the cloudEvents:* headers on rpc requests too;
	// events always carry them (YAML wire: {cloudevents: always}).
	CloudEvents bool
	// ResponseHeaders are the reply metadata keys (YAML response_headers,
	// lower case, such as location or etag) that REST callers get as HTTP
	// headers of the same name; other keys come as Grpc-Metadata-<key> and
	// Grpc-Trailer-<key>. A route that leaves the key out inherits
	// defaults.response_headers; YAML [] names none.
	ResponseHeaders []string
	// Async, if not nil, lets the REST ingress answer a long call with an
	// operation to poll (YAML async). An rpc route to the broker that leaves
	// it out inherits defaults.async; a route that sets it in part takes
	// the rest from defaults.async.
	Async *Async
	// Stream bounds each stream of a server-streaming route (YAML stream:
	// {max_messages, max_bytes, idle}); it does nothing on other routes. A
	// route inherits each field it leaves 0 from defaults.stream; what is
	// still 0 takes the default of StreamBounds.
	Stream StreamBounds
	// Queues are the queues whose consumers serve the route (its queue,
	// or the topology's bindings that match its exchange and routing key);
	// nil when figway cannot know them. The gateway watches their
	// consumers when its Publisher is a ConsumerCounter.
	Queues []string

	// Strangler-fig settings (docs/migration.md).

	// Fallback is where calls go while the breaker is open or the broker
	// is down: empty (answer UNAVAILABLE) or TargetLegacy.
	Fallback Target
	// Shadow, on a legacy route, also publishes calls as events, off the
	// caller's path: YAML shadow: true mirrors every call, shadow:
	// {percent: N} a sample.
	Shadow bool
	// ShadowPercent is the share of calls a shadowing route mirrors, 0 to
	// 100: 100 for shadow: true. The sample is by hash of the StickyBy
	// header's value when the call has one, at random otherwise.
	ShadowPercent int
	// Compare, on a shadowing route, publishes the shadow copy as an rpc
	// call, waits for its reply off the caller's path, and compares it
	// field by field with legacy's answer. Needs legacy.grpc.
	Compare bool
	// IgnoreFields are the output message's fields left out of Compare
	// (YAML ignore_fields): proto field names, dot-separated for nested
	// ones, such as updated_at or items.sku.
	IgnoreFields []string
	// IgnoreMetadata are the reply metadata keys (YAML ignore_metadata,
	// lower case) left out of Compare, such as date or x-request-id.
	IgnoreMetadata []string
	// Weight, on a broker route, is the percentage of calls (0 to 100)
	// sent to the broker; the others go to legacy (a canary). If Weight is
	// nil, every call goes to the broker. Needs legacy.grpc.
	Weight *int
	// Ramp, if not nil, moves the weight of a broker route step by step
	// while its gate holds (YAML ramp); it replaces Weight. A route that
	// leaves it out inherits defaults.ramp, field by field.
	Ramp *Ramp
	// StickyBy names a metadata key or header (YAML sticky_by, lower
	// case): calls with the same value go to the same side of the canary,
	// or are always in or always out of the shadow sample, by hash.
	StickyBy string
	// PinBy names a request header (YAML pin_by, lower case) whose value
	// "broker" or "legacy" sends the call to that side, before Weight and
	// StickyBy apply; other values are ignored, and so is a pin to a side
	// the route does not have. A route that leaves it out inherits
	// defaults.pin_by.
	PinBy string

	// MaxInFlight is how many calls may wait at once, the route's bulkhead
	// (YAML max_in_flight); 0 or less: unlimited. In the routes file, a
	// route that leaves it out inherits defaults.max_in_flight (1024 if
	// that is left out too).
	MaxInFlight int
	// Breaker is the route's circuit breaker; in the routes file, each
	// field a route leaves 0 takes defaults.breaker's.
	Breaker Breaker
	// Retry, on an rpc route, allows a second publish of a call that may
	// have reached the broker already (YAML retry). If Retry is empty, a
	// call is published again only when it provably never left figway.
	Retry Retry

	// Edge checks, before anything else of a call, on every target
	// (docs/operations.md, "Authentication and rate limits"). In the
	// routes file (YAML auth, rate_limit), a route that leaves a key out
	// inherits defaults' whole; auth: off and rate_limit: off inherit none.
	Auth      *Auth      // nil: no token needed
	RateLimit *RateLimit // nil: no limit per caller
}

// Publishes reports whether the gateway takes the route's calls: a broker
// route, or a legacy route that shadows its calls to the broker. The calls
// of any other route go to the legacy passthrough, untouched.
func (s *RouteSpec) Publishes() bool { return s.To == TargetBroker || s.Shadow }

// HeaderLimits bound what the forwarded headers of one call may put in its
// message, so that no caller can make figway publish a header table larger
// than the broker's frame_max (docs/wire-protocol.md, "Size of the
// headers").
type HeaderLimits struct {
	// Value is the largest value of one forwarded header, in bytes
	// (server.max_forwarded_value_bytes). If Value is 0, 8 KiB is used.
	Value int
	// Total bounds all forwarded headers of a call together, names and
	// values as encoded, in bytes (server.max_forwarded_bytes). If Total
	// is 0, 32 KiB is used.
	Total int
}

func (l HeaderLimits) orDefaults() HeaderLimits {
	if l.Value <= 0 {
		l.Value = DefaultMaxForwardedValueBytes
	}
	if l.Total <= 0 {
		l.Total = DefaultMaxForwardedBytes
	}
	return l
}

// Target is where a route sends its calls.
type Target string

const (
	// TargetBroker publishes the call on RabbitMQ.
	TargetBroker Target = "broker"
	// TargetLegacy passes the call through to the legacy service.
	TargetLegacy Target = "legacy"
)

// Pattern is how a route that publishes answers its caller.
type Pattern string

const (
	// PatternRPC waits for the correlated reply and answers with it.
	PatternRPC Pattern = "rpc"
	// PatternEvent answers once the broker has confirmed the message.
	PatternEvent Pattern = "event"
)

// Encoding is the body format of the messages a route publishes.
type Encoding string

const (
	// EncodingProtobuf publishes the protobuf wire format,
	// application/protobuf.
	EncodingProtobuf Encoding = "protobuf"
	// EncodingJSON publishes protobuf's JSON mapping, application/json.
	EncodingJSON Encoding = "json"
)

// Retry says when a route may publish a call a second time.
type Retry string

const (
	// RetryIdempotent: the method is idempotent, so an rpc call whose
	// channel or connection was lost after its request was published may
	// be published once more, within its deadline. The zero Retry publishes
	// again only a call that provably never left figway.
	RetryIdempotent Retry = "idempotent"
)

// Breaker configures a route's circuit breaker; see
// [resilience.BreakerSettings] for each field and its default.
type Breaker struct {
	Failures         int
	OpenFor          time.Duration
	HalfOpenRequests int
	FailureRatio     float64
	Window           time.Duration
	MinRequests      int
}

// Async is how a route's REST calls become operations to poll
// (docs/rest.md, "Long calls"). Every field has its value: config applies
// the defaults.
type Async struct {
	// After is how long a call is answered synchronously before it
	// becomes an operation.
	After time.Duration
	// Keep is how long an operation is kept once it is done.
	Keep time.Duration
	// Timeout is the deadline of an async call, in place of the route's
	// timeout.
	Timeout time.Duration
	// OwnerBy, if set, names the request header whose value owns the
	// operation.
	OwnerBy string
}

// HTTPRule is a REST binding in the shape of google.api.HttpRule.
type HTTPRule struct {
	Verb string // GET, PUT, POST, DELETE, PATCH or a custom verb such as HEAD
	Path string // the path template, "/v1/orders/{order_id}"
	// Body is the request field that the HTTP body maps to: "" (no body),
	// "*" (the whole request) or the name of a top-level field.
	Body string
	// ResponseBody is the response field that becomes the HTTP body; if
	// empty, the whole response is.
	ResponseBody string
}

// String is the async settings as figway routes prints them.
func (a *Async) String() string {
	s := fmt.Sprintf("after %s, keep %s, timeout %s", a.After, a.Keep, a.Timeout)
	if a.OwnerBy != "" {
		s += ", owner_by " + a.OwnerBy
	}
	return s
}

// PathPart is a piece of an HTTP path template (google.api.http): a
// literal, or a variable — Var, a field path, and the Pattern of segments
// it matches ("*" when the template gives none).
type PathPart struct {
	Literal      string
	Var, Pattern string
}

// ParsePath splits an HTTP path template into its parts, the one parser
// of templates for the routes file's checks, the REST bindings and their
// OpenAPI paths: "/v1/{name=shelves/*}/books/{book.id}" → "/v1/",
// name=shelves/*, "/books/", book.id=*.
func ParsePath(template string) ([]PathPart, error) {
	var parts []PathPart
	for rest := template; ; {
		before, after, ok := strings.Cut(rest, "{")
		if strings.Contains(before, "}") {
			return nil, errors.New(`"}" without "{"`)
		}
		if before != "" {
			parts = append(parts, PathPart{Literal: before})
		}
		if !ok {
			return parts, nil
		}
		v, tail, ok := strings.Cut(after, "}")
		if !ok || strings.Contains(v, "{") {
			return nil, errors.New(`"{" without "}"`)
		}
		name, pattern, hasPattern := strings.Cut(v, "=")
		if !hasPattern {
			pattern = "*"
		}
		parts = append(parts, PathPart{Var: name, Pattern: pattern})
		rest = tail
	}
}

// PathVars returns the field paths of the variables of an HTTP path
// template: "/v1/{name=shelves/*}/books/{book.id}" → name, book.id.
func PathVars(template string) ([]string, error) {
	parts, err := ParsePath(template)
	if err != nil {
		return nil, err
	}
	var vars []string
	for _, p := range parts {
		if p.Var != "" {
			vars = append(vars, p.Var)
		}
	}
	return vars, nil
}
