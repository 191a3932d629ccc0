package worker

import (
	"context"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/wire"
)

// running maps the correlation ids of the rpc requests whose handlers run
// to the cancel functions of their contexts.
type running struct {
	mu sync.Mutex
	m  map[string]context.CancelFunc
}

// track records cancel as what ends the handler's context of the rpc
// request with correlation id id, until untrack.
func (r *running) track(id string, cancel context.CancelFunc) {
	r.mu.Lock()
	if r.m == nil {
		r.m = make(map[string]context.CancelFunc)
	}
	r.m[id] = cancel
	r.mu.Unlock()
}

// untrack forgets the handler of id: it returned.
func (r *running) untrack(id string) {
	r.mu.Lock()
	delete(r.m, id)
	r.mu.Unlock()
}

// cancel ends the context of the handler of id, if one runs here.
func (r *running) cancel(id string) bool {
	r.mu.Lock()
	cancel := r.m[id]
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	return cancel != nil
}

// listenCancels consumes the cancels of the worker's methods on a channel
// of its own, and ends the contexts of their handlers, until the
// connection closes; the channel it returns is closed then. A broker that
// refuses the queue or the bindings costs the worker its cancels only:
// the failure is logged, and requests are served as before.
func (w *Worker) listenCancels(conn *amqp.Connection) <-chan struct{} {
	done := make(chan struct{})
	deliveries, err := w.consumeCancels(conn)
	if err != nil {
		w.log.Warn("not listening for cancelled calls", "exchange", wire.CancelExchange, "err", err)
		close(done)
		return done
	}
	go func() {
		defer close(done)
		for d := range deliveries {
			if w.runs.cancel(d.CorrelationId) {
				w.stats.cancelled.Add(1)
			}
		}
	}()
	return done
}

// consumeCancels declares the cancel exchange and a queue of the worker's
// own bound to it with each of its methods, and consumes it.
func (w *Worker) consumeCancels(conn *amqp.Connection) (<-chan amqp.Delivery, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (<-chan amqp.Delivery, error) {
		ch.Close()
		return nil, err
	}
	// name, kind, durable, autoDelete, internal, noWait, args
	if err := ch.ExchangeDeclare(wire.CancelExchange, wire.CancelExchangeType, true, false, false, false, nil); err != nil {
		return fail(err)
	}
	// name, durable, autoDelete, exclusive, noWait, args: the server names
	// it, and it goes with the connection.
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return fail(err)
	}
	for _, m := range w.methods() {
		if err := ch.QueueBind(q.Name, m, wire.CancelExchange, false, nil); err != nil {
			return fail(err)
		}
	}
	// queue, consumer, autoAck, exclusive, noLocal, noWait, args
	ds, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return fail(err)
	}
	return ds, nil
}

// methods lists the methods the worker has handlers for.
func (w *Worker) methods() []string {
	ms := make([]string, 0, len(w.handlers)+len(w.streams))
	for m := range w.handlers {
		ms = append(ms, m)
	}
	for m := range w.streams {
		ms = append(ms, m)
	}
	return ms
}
