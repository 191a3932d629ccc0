package orders_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"

	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
)

// poisonRefused: a request delivered three times before, each delivery
// ending with its consumer's channel closing (as when the handler crashes
// the worker's process) — once before a worker set it aside, so that its
// copy carries 1 in figway-delivery-count, and twice as counted by its
// quorum queue — is answered INTERNAL
// "poison request" by the worker cmd, which is started on that queue
// afterwards, without running it, and rejected (docs/wire-protocol.md,
// "Poison requests"); the next request is served.
func poisonRefused(t *testing.T, url, encoding string, cmd func(t *testing.T, url string) *exec.Cmd) {
	const queue = "orders.poison"
	ch := rabbitmq.Channel(t, url)
	// name, durable, autoDelete, exclusive, noWait, args
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	replies, err := ch.Consume(wire.DirectReplyTo, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	send := func(carried int64) string {
		p := getOrder(encoding, wire.DirectReplyTo, time.Now().Add(time.Minute))
		if carried > 0 {
			if p.Headers == nil {
				p.Headers = amqp.Table{}
			}
			p.Headers["figway-delivery-count"] = carried
		}
		if err := ch.PublishWithContext(context.Background(), "", queue, false, false, p); err != nil {
			t.Fatal(err)
		}
		return p.CorrelationId
	}
	// A copy another worker set aside after the queue had counted one
	// delivery, then delivered twice more.
	poison := send(1)
	for range 2 {
		c := rabbitmq.Channel(t, url)
		poll.Until(t, 10*time.Second, "the request in "+queue, func() bool {
			_, ok, err := c.Get(queue, false)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		})
		c.Close() // the consumer dies holding the request
	}

	w := cmd(t, url)
	w.Args = append(w.Args, "--queue", queue, "--queue-type", "quorum")
	log := start(t, w, "ready", 30*time.Second)
	next := func() amqp.Delivery {
		select {
		case d := <-replies:
			return d
		case <-time.After(20 * time.Second):
			t.Fatal("no reply")
		}
		panic("unreachable")
	}
	d := next()
	st, err := wire.ReplyStatus(d.Headers)
	if err != nil {
		t.Fatal(err)
	}
	if d.CorrelationId != poison || st.Code() != codes.Internal || !strings.HasPrefix(st.Message(), "poison request") {
		t.Fatalf("reply to %s: %v %q; want the poison request %s answered INTERNAL \"poison request...\"", d.CorrelationId, st.Code(), st.Message(), poison)
	}
	if !strings.Contains(log.String(), "poison request") || !strings.Contains(log.String(), poison) {
		t.Errorf("the worker's log does not tell the poison request %s", poison)
	}
	live := send(0)
	if d := next(); d.CorrelationId != live || d.Headers[wire.HeaderStatus] != nil {
		t.Errorf("reply to %s with headers %v; want %s answered OK", d.CorrelationId, d.Headers, live)
	}
	// Rejected, not requeued: the queue holds nothing.
	poll.Until(t, 10*time.Second, queue+" empty", func() bool {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
		if err != nil {
			t.Fatal(err)
		}
		return q.Messages == 0
	})
}
