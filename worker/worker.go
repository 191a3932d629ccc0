package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// AppID is the app_id property of every reply a [Worker] publishes.
const AppID = "figway-worker"

// QueueType is the type of a queue declared by a [Worker].
type QueueType string

// Queue types a [Worker] can declare.
const (
	Classic QueueType = "classic"
	Quorum  QueueType = "quorum"
)

// Config configures a [Worker]. Only URL (or URLs) and Queue are required.
type Config struct {
	// URL is the broker's AMQP URL, amqp://user:password@host:5672/vhost.
	// It is never logged: it holds the password.
	URL string
	// URLs, instead of URL, are the AMQP URLs of a cluster's nodes, tried
	// in turn: when a connection is lost or a node refuses, Run goes on to
	// the next URL at once, and backs off only once every URL has failed
	// in a row. Set URL or URLs, not both.
	URLs []string
	// Queue is the name of the queue to consume figway's requests from.
	Queue string
	// Declare, if non-nil, declares Queue and its bindings at start and
	// after every reconnect. If nil, the queue must already exist.
	Declare *Queue
	// Prefetch is the basic.qos prefetch count: how many unacknowledged
	// requests the broker sends ahead of the handlers, at most 65535. If
	// 0, 2 × Concurrency is used.
	Prefetch int
	// Concurrency is the number of handlers that run at once. If 0, 16
	// is used.
	Concurrency int
	// Logger receives the worker's logs. If nil, slog.Default() is used.
	Logger *slog.Logger
	// ShutdownGrace is how long Run waits for running handlers once its
	// context is cancelled, before cancelling their contexts and leaving
	// their requests to be redelivered. If 0, 10s is used.
	ShutdownGrace time.Duration
	// AckWindow bounds how long the ack of a request whose reply is
	// published may be held, to go out with others as one basic.ack with
	// multiple set: the broker settles many requests for the price of
	// one. A held ack goes out at once when no other request is running,
	// and at shutdown; with hundreds of finished requests held behind
	// running ones, acks go out alone until the run catches up. A request
	// whose ack was held when the worker died is redelivered, like any
	// unacked one (at-least-once). If 0, 5ms is used; if negative, each
	// request is acked alone as soon as it is done.
	AckWindow time.Duration
	// MaxDeliveries is how many times a request may be delivered before
	// the worker stops running it: a request that comes back from a
	// quorum queue delivered more than MaxDeliveries times (the
	// x-delivery-count header) is a poison request — one whose handler
	// took its worker down on every delivery — and is answered INTERNAL
	// "poison request" without running, and rejected without requeue:
	// dead-lettered if the queue has a dead-letter exchange, else dropped.
	// Classic queues do not count deliveries, and their requests are
	// always run. If 0, 3 is used; if negative, no request is refused.
	MaxDeliveries int
	// TracerProvider, if set, gives each request a CONSUMER span, a child
	// of the traceparent figway wrote on it, in the handler's context: the
	// handler's own spans nest under it. The reply, the ack and a request
	// dropped as expired are recorded on it. Pass otel.GetTracerProvider()
	// to use the program's global provider. If nil, the worker makes no
	// span and costs nothing for tracing; [TraceContext] still gives the
	// handler the trace context.
	TracerProvider trace.TracerProvider
}

// Queue says how to declare the queue a [Worker] consumes: it takes its
// name from [Config.Queue].
type Queue struct {
	// Transient declares a classic queue that does not survive a broker
	// restart; by default the queue is durable. RabbitMQ 4 deprecates
	// transient queues that are not exclusive (it logs a warning on
	// their first use, and a later version refuses them): use it only
	// to match a queue declared that way elsewhere. Quorum queues are
	// always durable.
	Transient bool
	// Type is Classic or Quorum. If "", Classic is used.
	Type QueueType
	// Bindings bind the queue to exchanges. Each exchange is declared as
	// a durable topic exchange if it does not exist; if it exists with
	// another type or durability, the broker refuses the declaration
	// and Run returns the error.
	Bindings []Binding
}

// Binding binds the queue to Exchange with the routing key (pattern) Key.
type Binding struct {
	Exchange string
	Key      string
}

// Defaults of [Config].
const (
	defaultConcurrency   = 16
	defaultShutdownGrace = 10 * time.Second
)

// validate reports every problem of c, with its field name. It never
// quotes URL, which holds the password.
func (c *Config) validate() error {
	var errs []error
	switch {
	case c.URL == "" && len(c.URLs) == 0:
		errs = append(errs, errors.New("URL: missing"))
	case c.URL != "" && len(c.URLs) > 0:
		errs = append(errs, errors.New("URLs: set URL or URLs, not both"))
	case c.URL != "":
		if err := checkURL(c.URL); err != nil {
			errs = append(errs, fmt.Errorf("URL: %v", err))
		}
	}
	for i, u := range c.URLs {
		if err := checkURL(u); err != nil {
			errs = append(errs, fmt.Errorf("URLs[%d]: %v", i, err))
		}
	}
	if c.Queue == "" {
		errs = append(errs, errors.New("Queue: missing"))
	}
	if c.Prefetch < 0 || c.Prefetch > math.MaxUint16 {
		errs = append(errs, fmt.Errorf("Prefetch: %d is not within 0-%d", c.Prefetch, math.MaxUint16))
	}
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("Concurrency: %d is negative", c.Concurrency))
	}
	if c.ShutdownGrace < 0 {
		errs = append(errs, fmt.Errorf("ShutdownGrace: %v is negative", c.ShutdownGrace))
	}
	if q := c.Declare; q != nil {
		switch q.Type {
		case "", Classic:
		case Quorum:
			if q.Transient {
				errs = append(errs, errors.New("Declare.Transient: quorum queues are always durable"))
			}
		default:
			errs = append(errs, fmt.Errorf("Declare.Type: %q is not %q or %q", q.Type, Classic, Quorum))
		}
		for i, b := range q.Bindings {
			if b.Exchange == "" {
				errs = append(errs, fmt.Errorf("Declare.Bindings[%d].Exchange: missing (the default exchange takes no bindings)", i))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("worker: invalid config: %w", err)
	}
	return nil
}

// checkURL parses an AMQP URL. Its error never quotes the URL, which holds
// the password.
func checkURL(u string) error {
	_, err := amqp.ParseURI(u)
	// url.Error quotes the URL, password included: keep its cause only.
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		err = ue.Err
	}
	return err
}

// urls returns the URLs to try in turn.
func (c *Config) urls() []string {
	if len(c.URLs) > 0 {
		return c.URLs
	}
	return []string{c.URL}
}

// Worker consumes figway's requests from one queue, calls the handler
// registered for each request's method and publishes the reply. Register
// handlers with [Handle], then call [Worker.Run].
type Worker struct {
	cfg      Config // defaults applied
	log      *slog.Logger
	handlers map[string]handler
	streams  map[string]streamHandler // server-streaming methods
	runs     running                  // the rpc handlers a cancel may end
	running  atomic.Bool
	stats    counters
	gone     goneReplyTos
	// handed are the requests its sessions handed back unsettled.
	handed handedBack
	tracer trace.Tracer // nil without Config.TracerProvider
}

// New returns a Worker for cfg. It does not connect: [Worker.Run] does,
// and reports an invalid cfg.
func New(cfg Config) *Worker {
	if cfg.Concurrency == 0 {
		cfg.Concurrency = defaultConcurrency
	}
	if cfg.Prefetch == 0 && cfg.Concurrency > 0 {
		cfg.Prefetch = 2 * cfg.Concurrency
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = defaultShutdownGrace
	}
	if cfg.AckWindow == 0 {
		cfg.AckWindow = defaultAckWindow
	}
	if cfg.MaxDeliveries == 0 {
		cfg.MaxDeliveries = defaultMaxDeliveries
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Worker{cfg: cfg, log: cfg.Logger, handlers: make(map[string]handler)}
	if cfg.TracerProvider != nil {
		w.tracer = cfg.TracerProvider.Tracer(instrumentation)
	}
	return w
}

// handler decodes a request body with c, runs the typed handler and
// encodes its response with c.
type handler func(ctx context.Context, c codec, body []byte) ([]byte, error)

// Handle registers h for the full method name method,
// "orders.v1.OrderService/GetOrder" (a leading "/", as in grpc-go's
// FullMethodName constants, is ignored). Req and Resp are generated
// message pointer types, such as *ordersv1.GetOrderRequest.
//
// Options change how the method is served: [OnShadow] gives its shadow
// copies a dry run, [SkipShadows] leaves them unrun. Without them, shadow
// copies run h like any call; h can tell them by [IsShadow].
//
// Handle must be called before [Worker.Run]; it panics when called after,
// when method is not of the form "package.Service/Method", or when method
// already has a handler.
func Handle[Req, Resp proto.Message](w *Worker, method string, h func(ctx context.Context, req Req) (Resp, error), opts ...HandleOption) {
	method = checkHandle[Req](w, method, "Handle")
	var zero Req
	// A nil pointer of a generated type still knows its message type.
	typ := zero.ProtoReflect().Type()
	shadow := shadowHandler(method, h, opts)
	w.handlers[method] = func(ctx context.Context, c codec, body []byte) ([]byte, error) {
		req := newMessage[Req](typ)
		if err := c.unmarshal(body, req); err != nil {
			return nil, &decodeError{err: err}
		}
		run := h
		if IsShadow(ctx) {
			run = shadow
		}
		resp, err := run(ctx, req)
		if err != nil {
			return nil, err
		}
		b, err := c.marshal(resp)
		if err != nil {
			return nil, &encodeError{err: err}
		}
		return b, nil
	}
}

func newMessage[M proto.Message](typ protoreflect.MessageType) M {
	return typ.New().Interface().(M)
}
