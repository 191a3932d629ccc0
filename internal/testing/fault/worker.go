package fault

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/worker"
)

// Worker plays a migrated service through broker faults: it consumes a
// queue and publishes reply(d) to each request's reply-to, and when its
// connection is lost (the broker was killed, connections were closed) it
// connects again every 50 ms until the test ends.
type Worker struct {
	received atomic.Int64
}

// StartWorker starts a Worker on queue, which it declares (non-durable,
// as test topologies declare it). The Worker stops when t ends.
func StartWorker(t testing.TB, url, queue string, reply func(d *amqp.Delivery) amqp.Publishing) *Worker {
	w := &Worker{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			w.serve(ctx, url, queue, reply)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return w
}

// Received returns the number of requests the Worker has received.
func (w *Worker) Received() int64 { return w.received.Load() }

func (w *Worker) serve(ctx context.Context, url, queue string, reply func(d *amqp.Delivery) amqp.Publishing) {
	conn, err := amqp.DialConfig(url, amqp.Config{Heartbeat: time.Second, Dial: amqp.DefaultDial(time.Second)})
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	// name, durable, autoDelete, exclusive, noWait, args (durable:
	// RabbitMQ 4 deprecates transient queues that are not exclusive)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return
	}
	// queue, consumer, autoAck, exclusive, noLocal, noWait, args
	ds, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-ds:
			if !ok {
				return
			}
			w.received.Add(1)
			p := reply(&d)
			p.CorrelationId = d.CorrelationId
			ch.Publish("", d.ReplyTo, false, false, p)
		}
	}
}

// WaitConsuming waits until the SDK worker w has started consuming its
// queue. figway fails an rpc call at once when its queue has no consumer
// (docs/errors.md), so a test that starts a worker and calls right away
// must wait for it, as a deployment waits for a worker's readiness.
func WaitConsuming(t testing.TB, w *worker.Worker) {
	t.Helper()
	poll.Until(t, 30*time.Second, "the worker consumes its queue", func() bool { return w.Stats().Connects > 0 })
}

// RunWorker runs the SDK worker w until the test ends, or until stop,
// which returns once Run has returned and may be called more than once.
// A worker consumes only once its queue exists: call [WaitConsuming]
// before calls that need it, once figway (or the test) has declared it.
func RunWorker(t testing.TB, w *worker.Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}
