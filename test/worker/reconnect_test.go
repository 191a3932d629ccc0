package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
	"github.com/figway/figway/worker"
)

// TestReconnect cuts the worker off its broker in the ways production
// does and checks that it comes back, declares its queue again, and that a
// request whose handler was cut off is redelivered and answered: the ack
// is sent only after the reply. It takes a node of its own, since closing
// every connection or killing the broker would disturb other tests.
func TestReconnect(t *testing.T) {
	t.Parallel()
	node := rabbitmq.Own(t)
	url := node.URL()

	const holdMethod = "test.v1.Test/Hold" // the first call blocks until its ctx ends
	var holds atomic.Int64
	held := make(chan struct{})
	firstErr := make(chan error, 1)
	firstReturned := make(chan struct{})
	w, _ := startWorker(t, worker.Config{URL: url, Queue: testQueue, Declare: &worker.Queue{}}, func(w *worker.Worker) {
		(&fixture{}).register(w)
		worker.Handle(w, holdMethod, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
			if holds.Add(1) == 1 {
				defer close(firstReturned)
				close(held)
				<-ctx.Done()
				firstErr <- ctx.Err()
				return wrapperspb.String("first"), nil
			}
			return wrapperspb.String("second"), nil
		})
	})
	echo := func(t *testing.T) {
		t.Helper()
		c := newCaller(t, url)
		d := c.call(testQueue, request(t, echoMethod, wrapperspb.String("x")))
		if d.Headers[wire.HeaderStatus] != nil {
			t.Fatalf("Echo failed: %v", d.Headers)
		}
	}
	closeAll := func(t *testing.T) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := node.CloseAllConnections(ctx); err != nil {
			t.Fatal(err)
		}
	}
	reconnected := func(t *testing.T, connects uint64, timeout time.Duration) {
		t.Helper()
		poll.Until(t, timeout, fmt.Sprintf("Stats().Connects = %d", connects), func() bool { return w.Stats().Connects >= connects })
	}

	// The test's caller is a bare AMQP client on direct reply-to, and a
	// RabbitMQ 4 node drops direct replies until its boot is complete,
	// a moment after it accepts connections (docs/operations.md, "RabbitMQ
	// versions"; figway checks for that itself, a bare client does not).
	// This test is about the worker reconnecting, so it starts once a
	// request is answered.
	warmUp(t, url)

	t.Run("connection closed", func(t *testing.T) {
		echo(t)
		closeAll(t)
		reconnected(t, 2, waitFor)
		echo(t)
	})

	t.Run("handler cut off is redelivered", func(t *testing.T) {
		// The reply goes to a plain queue (figway's reply: queue mode), which
		// outlives the caller's connection, unlike direct reply-to.
		conn := rabbitmq.Dial(t, url)
		ch := channel(t, conn)
		if _, err := ch.QueueDeclare("replies", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		r := request(t, holdMethod, wrapperspb.String("x"))
		r.CorrelationID, r.ReplyTo = wire.NewID(), "replies"
		// The handler must be cut off by the broker, not by its deadline:
		// rabbitmqctl close_all_connections has taken 13 s on a loaded
		// machine.
		r.Deadline = time.Now().Add(time.Minute)
		if err := ch.PublishWithContext(context.Background(), "", testQueue, false, false, amqpwire.Publishing(&r, time.Now())); err != nil {
			t.Fatal(err)
		}
		<-held
		closeAll(t)
		// The cut-off handler's context ends: it cannot be acked any more.
		if err := <-firstErr; !errors.Is(err, context.Canceled) {
			t.Errorf("first call's ctx.Err() = %v; want context.Canceled", err)
		}
		reconnected(t, 3, waitFor)

		ch = channel(t, rabbitmq.Dial(t, url))
		// replies takes the replies in the queue until one answers id.
		replies := func(id string) (got []string) {
			t.Helper()
			poll.Until(t, waitFor, "the reply to "+id, func() bool {
				d, ok, err := ch.Get("replies", true)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					return false
				}
				var v wrapperspb.StringValue
				if err := proto.Unmarshal(d.Body, &v); err != nil {
					t.Fatal(err)
				}
				got = append(got, v.GetValue())
				return d.CorrelationId == id
			})
			return got
		}
		if got := replies(r.CorrelationID); len(got) != 1 || got[0] != "second" {
			t.Fatalf("replies = %q; want one, from the redelivered call: [second]", got)
		}
		if n := holds.Load(); n != 2 {
			t.Errorf("Hold handler ran %d times; want 2", n)
		}
		// The cut-off call's reply was never sent: once its handler has
		// returned, the reply to a later request is the only one behind
		// the redelivered call's.
		<-firstReturned
		later := request(t, echoMethod, wrapperspb.String("later"))
		later.CorrelationID, later.ReplyTo = wire.NewID(), "replies"
		if err := ch.PublishWithContext(context.Background(), "", testQueue, false, false, amqpwire.Publishing(&later, time.Now())); err != nil {
			t.Fatal(err)
		}
		if got := replies(later.CorrelationID); len(got) != 1 || got[0] != "echo: later" {
			t.Errorf("replies after the redelivered call's = %q; want only the later request's: [echo: later]", got)
		}
	})

	t.Run("broker restarted", func(t *testing.T) {
		// The queue is not durable: the worker must declare it again.
		if err := node.Kill(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := node.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		reconnected(t, 4, 30*time.Second)
		// A freshly booted node again (see warmUp above): the test's
		// caller counts once one request has been answered.
		warmUp(t, url)
	})
}

// warmUp sends echo requests until one is answered, each given 2 s, for at
// most 30 s, and logs how long that took.
func warmUp(t *testing.T, url string) {
	t.Helper()
	c := newCaller(t, url)
	begin := time.Now()
	for try := 1; time.Since(begin) < 30*time.Second; try++ {
		id := c.publish(testQueue, request(t, echoMethod, wrapperspb.String("warm-up")))
		deadline := time.After(2 * time.Second)
		for {
			select {
			case d := <-c.replies:
				if d.CorrelationId != id {
					continue // an earlier try's reply
				}
				t.Logf("the worker answered its first request %v after the test began to ask (try %d)", time.Since(begin).Round(time.Millisecond), try)
				return
			case <-deadline:
			}
			break
		}
	}
	t.Fatal("the worker answered no request within 30 s")
}
