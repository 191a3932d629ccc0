package gateway

import (
	"context"

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

// Reply is a service's answer to a call.
type Reply struct {
	Body        []byte
	ContentType string
	// Status is the status the service replied with; nil means OK.
	Status *status.Status
}
