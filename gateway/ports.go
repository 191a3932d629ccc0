package gateway

import (
	"context"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/wire"
)

// Publisher is the port through which the gateway reaches RabbitMQ.
// adapters/amqp implements it.
type Publisher interface {
	// Call publishes req to exchange with routing key and waits for the
	// correlated reply, until ctx is done. It fills in req.CorrelationID and
	// req.ReplyTo. It fails at once with an error wrapping ErrUnavailable
	// when the broker cannot take or route the request (not connected,
	// blocked, channel lost, nacked, returned).
	Call(ctx context.Context, exchange, key string, req *wire.Request) (*Reply, error)
	// Publish publishes req and returns once the broker has confirmed it
	// and not returned it.
	Publish(ctx context.Context, exchange, key string, req *wire.Request) error
}

// A Reconnector is a Publisher that can tell when it may publish again
// after losing its broker connection. A retry: idempotent call that the
// loss failed waits for it (at most retryWait) before publishing again;
// a call on any route that was never published waits (at most redialWait)
// while the Publisher is Redialing. adapters/amqp implements it.
type Reconnector interface {
	// AwaitConnected returns nil once the Publisher is connected and not
	// blocked, or ctx's error.
	AwaitConnected(ctx context.Context) error
	// Redialing reports whether the Publisher has lost its connection and
	// is dialing the next broker address at once — not every address has
	// failed in turn, so a connection is most likely a moment away (another
	// node of a cluster) — rather than backing off after an outage.
	Redialing() bool
}

// ConsumerCounter is what a Publisher may also implement to tell the
// gateway whether the queues of its routes have consumers. adapters/amqp
// implements it. When the Publisher does, an rpc call to a route whose
// queues are all known to have no consumer fails at once with
// ErrNoConsumer (or goes to legacy, with fallback: legacy) instead of
// waiting out its deadline for a reply nobody will send.
type ConsumerCounter interface {
	// WatchQueues replaces the set of queues whose consumers are counted.
	// The gateway calls it with the queues of every table it serves.
	WatchQueues(queues []string)
	// Consumers returns the number of consumers queue had when last
	// looked at, and whether that is known: it is not while the queue is
	// not watched or not looked at yet, does not exist, or figway is not
	// connected.
	Consumers(queue string) (n int, known bool)
	// Recount returns once the watched queues have been looked at again,
	// in a look that began after the call, or when ctx is done. The
	// gateway asks before it fails a call for want of a consumer, so that
	// a worker that attached since the last look is seen.
	Recount(ctx context.Context)
}

// Streamer is what a Publisher also implements to carry the calls of
// server-streaming routes (docs/wire-protocol.md, "Streaming replies").
// adapters/amqp implements it.
type Streamer interface {
	// Stream publishes req as Call does and returns the stream of its
	// replies, which holds at most what b allows for a caller that reads
	// slowly. It fails at once, as Call does, when the broker cannot take
	// the request; a publish refused later (nacked, returned) is the
	// error of the stream's Next.
	Stream(ctx context.Context, exchange, key string, req *wire.Request, b StreamBounds) (ReplyStream, error)
}

// ReplyStream is the stream of replies of one call. One goroutine reads it.
type ReplyStream interface {
	// Next returns the stream's next message in figway-seq order (Body,
	// ContentType, and the reply's Header metadata), or, with end true,
	// the end's Status, Header and Trailer. Its errors wrap
	// ErrStreamBroken, ErrStreamGap, ErrStreamBuffer, ErrBadReply, or
	// ctx's error when ctx ended before the first message.
	Next(ctx context.Context) (rep *Reply, end bool, err error)
	// Close stops the stream: later replies are unmatched and dropped.
	// It must be called once the stream is no longer read.
	Close()
}

// Reply is a service's answer to a call.
type Reply struct {
	Body        []byte
	ContentType string
	// Status is the status the service replied with; nil means OK.
	Status *status.Status
	// Header and Trailer are the reply's metadata (figway-rmd-* and
	// figway-rmt-*), and HTTPStatus the 2xx status it gives REST callers
	// (figway-http-status), or 0.
	Header, Trailer metadata.MD
	HTTPStatus      int
}

// Legacy is the port to the legacy service for the calls whose request the
// gateway has already read: canary, fallback and shadow. adapters/legacy
// implements it. Calls that never reach a broker route are proxied by the
// ingress itself, untouched.
type Legacy interface {
	// Unary sends a protobuf-encoded request of method ("/pkg.Service/M")
	// with the caller's metadata, and returns the reply with the upstream's
	// header and trailer. Its errors carry the upstream's gRPC status.
	Unary(ctx context.Context, method string, req []byte, md metadata.MD) (resp []byte, header, trailer metadata.MD, err error)
}
