package worker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
	"github.com/figway/figway/worker"
)

// bounce takes the request at the head of queue and lets it go unsettled
// times times, each time by closing the channel that got it — as a worker
// process that dies in the handler does — and returns the x-delivery-count
// each delivery carried (nil for none).
func bounce(t *testing.T, url, queue string, times int) []any {
	t.Helper()
	conn := rabbitmq.Dial(t, url)
	var counts []any
	for range times {
		ch := channel(t, conn)
		const autoAck = false
		var d amqp.Delivery
		poll.Until(t, waitFor, "the request in "+queue, func() bool {
			var ok bool
			var err error
			d, ok, err = ch.Get(queue, autoAck)
			if err != nil {
				t.Fatalf("Get(%s): %v", queue, err)
			}
			return ok
		})
		counts = append(counts, d.Headers["x-delivery-count"])
		if err := ch.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
	return counts
}

// TestPoisonRequest: a request that comes back from a quorum queue
// delivered more than MaxDeliveries times — its earlier deliveries never
// settled, as when the handler crashes its process — is answered INTERNAL
// "poison request" without running its handler, and rejected: the queue's
// dead-letter exchange gets it. One delivered MaxDeliveries times or
// fewer runs; a classic queue counts nothing, and its requests always run.
func TestPoisonRequest(t *testing.T) {
	t.Parallel()
	url := rabbitmq.ForTest(t).NewVHost(t)
	admin := channel(t, rabbitmq.Dial(t, url))
	// name, durable, autoDelete, exclusive, noWait, args
	if _, err := admin.QueueDeclare("poison.dead", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	quorum := amqp.Table{"x-queue-type": "quorum", "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "poison.dead"}

	tests := []struct {
		name          string
		args          amqp.Table
		bounces, max  int
		carried       int64 // figway-delivery-count
		wantPoison    bool
		wantDeadLeter bool
	}{
		{name: "quorum, 3 deliveries before, default max", args: quorum, bounces: 3, wantPoison: true, wantDeadLeter: true},
		{name: "quorum, 2 deliveries before, default max", args: quorum, bounces: 2},
		{name: "quorum, 3 deliveries before, max 4", args: quorum, bounces: 3, max: 4},
		{name: "quorum, 3 deliveries before, max -1", args: quorum, bounces: 3, max: -1},
		{name: "classic, 3 deliveries before", bounces: 3},
		{name: "quorum, 1 delivery before and 2 carried by a set-aside copy", args: quorum, bounces: 1, carried: 2, wantPoison: true, wantDeadLeter: true},
		{name: "classic, 3 carried by a set-aside copy", carried: 3, wantPoison: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			queue := "poison." + string(rune('a'+i))
			if _, err := admin.QueueDeclare(queue, true, false, false, false, tt.args); err != nil {
				t.Fatal(err)
			}
			c := newCaller(t, url)
			r := request(t, echoMethod, wrapperspb.String("crashes its worker"))
			r.CorrelationID, r.ReplyTo = wire.NewID(), wire.DirectReplyTo
			p := amqpwire.Publishing(&r, time.Now())
			if tt.carried > 0 {
				p.Headers["figway-delivery-count"] = tt.carried
			}
			c.publishRaw("", queue, p)
			id := r.CorrelationID
			counts := bounce(t, url, queue, tt.bounces)
			t.Logf("x-delivery-count of the bounced deliveries: %v", counts)

			var echoes atomic.Int64
			w, _ := startWorker(t, worker.Config{URL: url, Queue: queue, MaxDeliveries: tt.max}, func(w *worker.Worker) {
				worker.Handle(w, echoMethod, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
					echoes.Add(1)
					return wrapperspb.String("echo: " + req.GetValue()), nil
				})
			})
			d := c.next()
			if d.CorrelationId != id {
				t.Fatalf("reply correlation_id = %q; want %q", d.CorrelationId, id)
			}
			st, err := wire.ReplyStatus(d.Headers)
			if err != nil {
				t.Fatal(err)
			}
			got := w.Stats()
			if tt.wantPoison {
				if st.Code() != codes.Internal || !strings.Contains(st.Message(), "poison request") {
					t.Errorf("reply status = %v %q; want INTERNAL \"poison request...\"", st.Code(), st.Message())
				}
				if echoes.Load() != 0 || got.Poisoned != 1 {
					t.Errorf("handler ran %d times, Poisoned = %d; want 0 and 1", echoes.Load(), got.Poisoned)
				}
			} else {
				if st.Code() != codes.OK || echoes.Load() != 1 || got.Poisoned != 0 {
					t.Errorf("reply status %v, handler ran %d times, Poisoned = %d; want OK, 1, 0", st.Code(), echoes.Load(), got.Poisoned)
				}
			}
			if tt.wantDeadLeter {
				dl, ok := get(t, admin, "poison.dead")
				if !ok || dl.MessageId == "" {
					t.Fatalf("dead-letter queue: got %v; want the poison request", ok)
				}
				t.Logf("dead-lettered with x-death %v", dl.Headers["x-death"])
			}
			// The queue holds nothing more once the request is settled.
			poll.Until(t, waitFor, "queue "+queue+" empty", func() bool {
				q, err := admin.QueueDeclarePassive(queue, true, false, false, false, tt.args)
				if err != nil {
					t.Fatal(err)
				}
				return q.Messages == 0
			})
		})
	}
}

// get takes one message from queue, within waitFor.
func get(t *testing.T, ch *amqp.Channel, queue string) (amqp.Delivery, bool) {
	t.Helper()
	var d amqp.Delivery
	ok := false
	for end := time.Now().Add(waitFor); !ok && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		var err error
		if d, ok, err = ch.Get(queue, true); err != nil {
			t.Fatal(err)
		}
	}
	return d, ok
}

// TestQuarantine: requests handed back by a worker that died holding them
// (each one's x-delivery-count now 1) are run one at a time, since any of
// them may be the one that killed it and would take the others down again
// (their count with it); fresh requests that come once none has for 2 s
// run concurrently again.
func TestQuarantine(t *testing.T) {
	t.Parallel()
	url := rabbitmq.ForTest(t).NewVHost(t)
	const queue, n = "quarantine", 20
	admin := channel(t, rabbitmq.Dial(t, url))
	// name, durable, autoDelete, exclusive, noWait, args
	if _, err := admin.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	c := newCaller(t, url)
	publish := func() map[string]bool {
		ids := map[string]bool{}
		for range n {
			ids[c.publish(queue, request(t, echoMethod, wrapperspb.String("x")))] = true
		}
		return ids
	}
	answered := func(ids map[string]bool) {
		t.Helper()
		for range n {
			d := c.next()
			if !ids[d.CorrelationId] || d.Headers[wire.HeaderStatus] != nil {
				t.Fatalf("reply %q, headers %v; want one of the requests answered OK", d.CorrelationId, d.Headers)
			}
			delete(ids, d.CorrelationId)
		}
	}

	// A worker takes all of them and dies: its channel closes.
	returned := publish()
	dead := channel(t, rabbitmq.Dial(t, url))
	if err := dead.Qos(n, 0, false); err != nil {
		t.Fatal(err)
	}
	got, err := dead.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		<-got
	}
	dead.Close()

	var running, peak atomic.Int64
	startWorker(t, worker.Config{URL: url, Queue: queue, Concurrency: 8}, func(w *worker.Worker) {
		worker.Handle(w, echoMethod, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(20 * time.Millisecond)
			return req, nil
		})
	})
	consumers := watchConsumers(t, url, queue)
	answered(returned)
	if p := peak.Swap(0); p != 1 {
		t.Errorf("handed-back requests: peak concurrent handlers = %d; want 1", p)
	}
	time.Sleep(2500 * time.Millisecond)
	answered(publish())
	if p := peak.Load(); p < 2 {
		t.Errorf("fresh requests 2.5 s later: peak concurrent handlers = %d; want more than 1", p)
	}
	// Narrowing and widening change the consumer's prefetch, which takes
	// a new consumer: the old one goes only once the new one is there, or
	// figway would see no consumer for a moment and refuse calls.
	if looks, zeros := consumers(); zeros > 0 || looks < 10 {
		t.Errorf("the queue counted no consumer in %d of %d looks while the worker ran; want none of at least 10", zeros, looks)
	} else {
		t.Logf("the queue counted a consumer in each of %d looks while the worker narrowed and widened", looks)
	}
}

// watchConsumers counts queue's consumers, as figway does (a passive
// declare), as often as the broker answers — a consumer change takes a
// millisecond or two — until the returned function is
// called; that returns how many looks there were and how many counted no
// consumer.
func watchConsumers(t *testing.T, url, queue string) func() (looks, zeros int) {
	t.Helper()
	ch := channel(t, rabbitmq.Dial(t, url))
	stop := make(chan struct{})
	done := make(chan struct{})
	var looks, zeros int // written by the goroutine until done is closed
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			q, err := ch.QueueDeclarePassive(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
			if err != nil {
				t.Errorf("count consumers: %v", err)
				return
			}
			looks++
			if q.Consumers == 0 {
				zeros++
			}
		}
	}()
	var once sync.Once
	return func() (int, int) {
		once.Do(func() { close(stop); <-done })
		return looks, zeros
	}
}

// TestSetAside: a worker holding several redelivered requests runs one of
// them alone and hands the others back to the queue as copies carrying
// their count (docs/wire-protocol.md, "Poison requests"), so that a crash
// while it runs would charge nothing beside it. Each request is answered
// once, its handler run once. (TestPoisonRequest's carried cases show that
// a copy's count is read.)
func TestSetAside(t *testing.T) {
	t.Parallel()
	url := rabbitmq.ForTest(t).NewVHost(t)
	admin := channel(t, rabbitmq.Dial(t, url))
	const queue = "setaside"
	args := amqp.Table{"x-queue-type": "quorum"}
	if _, err := admin.QueueDeclare(queue, true, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	runs := map[string]int{}
	var mu sync.Mutex
	release := make(chan struct{})
	w, _ := startWorker(t, worker.Config{URL: url, Queue: queue}, func(w *worker.Worker) {
		worker.Handle(w, echoMethod, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
			if req.GetValue() == "block" {
				<-release
			}
			mu.Lock()
			runs[req.GetValue()]++
			mu.Unlock()
			return wrapperspb.String("echo: " + req.GetValue()), nil
		})
	})
	c := newCaller(t, url)
	// A fresh request, answered once the session has widened (a new
	// session stays narrow a quarter of a second).
	time.Sleep(time.Second)
	c.publish(queue, request(t, echoMethod, wrapperspb.String("fresh")))
	c.next()

	// A burst of requests counted once before — as a crashed worker's
	// prefetch comes back — reaches the wide consumer while a fresh one
	// runs: none of them may run alone until it is done, so the session
	// holds several when it is (RabbitMQ 4.0 may deliver them one by one).
	const n = 16
	ids := map[string]bool{}
	ids[c.publish(queue, request(t, echoMethod, wrapperspb.String("block")))] = true
	for i := range n {
		r := request(t, echoMethod, wrapperspb.String(fmt.Sprint("suspect ", i)))
		r.CorrelationID, r.ReplyTo = wire.NewID(), wire.DirectReplyTo
		p := amqpwire.Publishing(&r, time.Now())
		p.Headers["figway-delivery-count"] = int64(1)
		c.publishRaw("", queue, p)
		ids[r.CorrelationID] = true
	}
	time.Sleep(500 * time.Millisecond)
	close(release)
	got := map[string]int{}
	c.collect(ids, got)
	for id, k := range got {
		if k != 1 {
			t.Errorf("request %s answered %d times; want once", id, k)
		}
	}
	mu.Lock()
	for v, k := range runs {
		if k != 1 {
			t.Errorf("handler ran %d times for %q; want once", k, v)
		}
	}
	mu.Unlock()
	st := w.Stats()
	t.Logf("stats: %+v", st)
	if st.SetAside == 0 {
		t.Errorf("SetAside = 0; want the suspects held beside the one run alone set aside")
	}
	if st.Poisoned != 0 {
		t.Errorf("Poisoned = %d; want 0", st.Poisoned)
	}
}

// TestHandedBackRunsAtOnce: requests a worker held when its connection was
// closed — three times in a row, as in a rolling restart of a 3-node
// cluster — come back to it charged a delivery each time, as a crashed
// worker's would. The worker knows them for its own: it runs them at
// once, side by side, rather than one at a time in quarantine, and does
// not refuse them as poison (worker's doc, "Poison requests").
func TestHandedBackRunsAtOnce(t *testing.T) {
	t.Parallel()
	node := rabbitmq.ForTest(t)
	url := node.NewVHost(t)
	const queue = "handedback.requests"
	const n, losses = 8, 3
	var hold atomic.Bool // hold until the connection closes
	var running, peak atomic.Int64
	held := make(chan struct{}, n)
	w, _ := startWorker(t, worker.Config{URL: url, Queue: queue, Concurrency: n, Declare: &worker.Queue{Type: worker.Quorum}},
		func(w *worker.Worker) {
			worker.Handle(w, echoMethod, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
				if hold.Load() {
					held <- struct{}{}
					<-ctx.Done() // the session is lost: not acked, handed back
					return nil, ctx.Err()
				}
				k := running.Add(1)
				defer running.Add(-1)
				for p := peak.Load(); k > p && !peak.CompareAndSwap(p, k); p = peak.Load() {
				}
				time.Sleep(200 * time.Millisecond)
				return req, nil
			})
		})
	hold.Store(true)
	// A new session runs one request at a time for a quarter second.
	time.Sleep(time.Second)
	c := newCaller(t, url)
	ids := map[string]bool{}
	for i := range n {
		r := request(t, echoMethod, wrapperspb.String(fmt.Sprint("held ", i)))
		r.Deadline = time.Now().Add(2 * time.Minute)
		ids[c.publish(queue, r)] = true
	}
	for loss := 1; loss <= losses; loss++ {
		for range n {
			select {
			case <-held:
			case <-time.After(waitFor):
				t.Fatalf("loss %d: the worker did not take the requests", loss)
			}
		}
		if loss == losses {
			hold.Store(false)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		k, err := node.CloseConnection(ctx, "figway-worker "+queue, "test")
		cancel()
		if err != nil || k != 1 {
			t.Fatalf("CloseConnection = %d, %v; want 1 closed", k, err)
		}
	}
	for range n {
		d := c.next()
		if !ids[d.CorrelationId] {
			t.Fatalf("unexpected or duplicate reply %s", d.CorrelationId)
		}
		delete(ids, d.CorrelationId)
		if st, err := wire.ReplyStatus(d.Headers); err != nil || st != nil {
			t.Errorf("reply to %s: %v %v; want OK", d.CorrelationId, st, err)
		}
	}
	st := w.Stats()
	t.Logf("peak concurrent handlers after the last reconnect: %d; stats %+v", peak.Load(), st)
	if peak.Load() < 2 {
		t.Errorf("peak concurrent handlers = %d; want the handed-back requests run side by side", peak.Load())
	}
	if st.SetAside != 0 || st.Poisoned != 0 {
		t.Errorf("SetAside = %d, Poisoned = %d; want 0: no request was a suspect", st.SetAside, st.Poisoned)
	}
}
