package gateway

import (
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
// of one method. The config package translates the routes file into
// RouteSpecs, defaults applied and validated (see docs/configuration.md for
// what each setting means in the file).
type RouteSpec struct {
	Method string                        // "orders.v1.OrderService/GetOrder"
	Desc   protoreflect.MethodDescriptor // Method, resolved in the table's files

	To         Target
	Exchange   string // "" is RabbitMQ's default exchange
	RoutingKey string
	Pattern    Pattern
	Timeout    time.Duration // bounds each call; 0 leaves only the caller's deadline
	Encoding   Encoding
	// Forward lists the lower-case metadata keys / header names copied to
	// the message as figway-md-<key>.
	Forward []string
	// ForwardLimits bound what Forward may put in one call's message.
	ForwardLimits HeaderLimits
	// HTTP, if not nil, adds a REST binding to the method or replaces its
	// google.api.http rule.
	HTTP *HTTPRule
	// CloudEvents puts the cloudEvents:* headers on rpc requests too;
	// events always carry them.
	CloudEvents bool
	// ResponseHeaders are the reply metadata keys, lower case, that REST
	// callers get as HTTP headers of the same name.
	ResponseHeaders []string
	// Async, if not nil, lets the REST ingress answer a long call with an
	// operation to poll.
	Async *Async
	// Queues are the queues whose consumers serve the route (its queue,
	// or the topology's bindings that match its exchange and routing key);
	// nil when figway cannot know them. The gateway watches their
	// consumers when its Publisher is a ConsumerCounter.
	Queues []string

	// Strangler-fig settings (docs/migration.md).
	Fallback       Target // "" or TargetLegacy
	Shadow         bool
	ShadowPercent  int // share of calls a shadowing route mirrors, 0 to 100
	Compare        bool
	IgnoreFields   []string // dot-separated output fields left out of Compare
	IgnoreMetadata []string // reply metadata keys left out of Compare
	Weight         *int     // percent of calls to the broker; nil: all
	StickyBy       string   // lower-case header whose value picks the canary side or the shadow sample
	PinBy          string   // lower-case header whose value "broker" or "legacy" pins the call

	MaxInFlight int // the route's bulkhead; 0 or less: unlimited
	Breaker     Breaker
	Retry       Retry

	// Edge checks, before anything else of a call, on every target
	// (docs/operations.md, "Authentication and rate limits").
	Auth      *Auth      // nil: no token needed
	RateLimit *RateLimit // nil: no limit per caller
}

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
