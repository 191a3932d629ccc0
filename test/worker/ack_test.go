package worker_test

import (
	"context"
	"math/rand/v2"
	"net/url"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proxy"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

// Tests of gathered acks (Config.AckWindow). Each checks what the broker
// holds afterwards: a request acked too early would be lost when the worker
// dies, one never acked would come back.

const sleepMethod = "test.v1.Test/Sleep" // StringValue: milliseconds to sleep, then echo

func registerSleep(w *worker.Worker) {
	worker.Handle(w, sleepMethod, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		ms, _ := strconv.Atoi(req.GetValue())
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return req, nil
	})
}

// proxied returns rawURL with its host replaced by a proxy to it, which
// the test can cut like a worker dying: the broker sees the connection
// reset.
func proxied(t *testing.T, rawURL string) (string, *proxy.Proxy) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	u.Host = p.Addr()
	return u.String(), p
}

// queued returns how many requests the queue holds ready: after every
// consumer is gone, the requests that were delivered and never acked.
func queued(t *testing.T, rawURL string) int {
	t.Helper()
	ch := channel(t, rabbitmq.Dial(t, rawURL))
	q, err := ch.QueueDeclarePassive(testQueue, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("QueueDeclarePassive: %v", err)
	}
	return q.Messages
}

// collect reads c's replies, counting them by correlation id in got, by correlation id until it holds all of
// ids, failing the test after waitFor.
func (c *caller) collect(ids map[string]bool, got map[string]int) {
	c.t.Helper()
	for {
		missing := 0
		for id := range ids {
			if got[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		select {
		case d := <-c.replies:
			got[d.CorrelationId]++
		case <-time.After(waitFor):
			c.t.Fatalf("%d of %d requests unanswered after %v", missing, len(ids), waitFor)
		}
	}
}

// TestAcksScrambled: requests that finish in an order unrelated to their
// delivery are all answered and all acked — with far fewer acks than
// requests, since a window longer than the test holds each ack until the
// contiguous run reaches it.
func TestAcksScrambled(t *testing.T) {
	t.Parallel()
	u := rabbitmq.ForTest(t).NewVHost(t)
	const n = 40
	w, stop := startWorker(t, worker.Config{URL: u, Queue: testQueue, Declare: &worker.Queue{},
		Concurrency: n, AckWindow: time.Minute}, registerSleep)
	c := newCaller(t, u)
	ids := map[string]bool{}
	for _, i := range rand.Perm(n) {
		ids[c.publish(testQueue, request(t, sleepMethod, wrapperspb.String(strconv.Itoa(20+5*i))))] = true
	}
	got := map[string]int{}
	c.collect(ids, got)

	// The last handler to finish finds none other running and sends what
	// is held; wait for it, then stop the worker.
	poll.Until(t, waitFor, "every request is acked", func() bool { return w.Stats().Acks > 0 && w.Stats().Replied == n })
	stop()
	if s := w.Stats(); s.Acks >= n {
		t.Errorf("Stats().Acks = %d for %d requests; want them gathered", s.Acks, n)
	}
	if q := queued(t, u); q != 0 {
		t.Errorf("%d requests back in the queue after the worker stopped; want 0: all acked", q)
	}
}

// TestAcksSlowNeighbour: a request still running does not hold the acks of
// the fast ones delivered after it for longer than the window. The worker
// is then cut off like a dying one: only the slow request comes back.
func TestAcksSlowNeighbour(t *testing.T) {
	t.Parallel()
	u := rabbitmq.ForTest(t).NewVHost(t)
	pu, px := proxied(t, u)
	const window = 20 * time.Millisecond
	a, _ := startWorker(t, worker.Config{URL: pu, Queue: testQueue, Declare: &worker.Queue{},
		Concurrency: 32, AckWindow: window}, func(w *worker.Worker) {
		(&fixture{}).register(w)
		registerSleep(w)
	})
	c := newCaller(t, u)
	slow := c.publish(testQueue, request(t, blockMethod, &emptypb.Empty{})) // the lowest delivery tag
	ids := map[string]bool{}
	for range 20 {
		ids[c.publish(testQueue, request(t, sleepMethod, wrapperspb.String("1")))] = true
	}
	got := map[string]int{}
	c.collect(ids, got)
	poll.Until(t, waitFor, "the fast requests' acks go out", func() bool { return a.Stats().Acks >= 1 })
	time.Sleep(50 * window) // a wide margin over the window, for a loaded machine

	px.Reset() // the worker dies with its slow request running
	b, _ := startWorker(t, worker.Config{URL: u, Queue: testQueue}, func(w *worker.Worker) {
		(&fixture{}).register(w)
		registerSleep(w)
	})
	poll.Until(t, waitFor, "the slow request is redelivered", func() bool { return b.Stats().Received >= 1 })
	time.Sleep(200 * time.Millisecond) // anything else redelivered arrives meanwhile
	if got := b.Stats().Received; got != 1 {
		t.Errorf("second worker received %d requests; want 1, the slow one: the fast ones were acked", got)
	}
	if d := c.next(); d.CorrelationId != slow {
		t.Errorf("reply to %q; want the slow request's, %q", d.CorrelationId, slow)
	}
}

// TestAcksWorkerKilled: a worker cut off in the middle of a batch loses
// none of its requests. Whatever it had not acked — running, or answered
// with the ack held — is redelivered to the next worker and answered;
// nothing stays in the queue.
func TestAcksWorkerKilled(t *testing.T) {
	t.Parallel()
	u := rabbitmq.ForTest(t).NewVHost(t)
	pu, px := proxied(t, u)
	a, _ := startWorker(t, worker.Config{URL: pu, Queue: testQueue, Declare: &worker.Queue{}, Concurrency: 8}, registerSleep)
	c := newCaller(t, u)
	const n = 200
	ids := map[string]bool{}
	for range n {
		ids[c.publish(testQueue, request(t, sleepMethod, wrapperspb.String(strconv.Itoa(rand.IntN(10)))))] = true
	}
	got := map[string]int{}
	for len(got) < n/2 {
		select {
		case d := <-c.replies:
			got[d.CorrelationId]++
		case <-time.After(waitFor):
			t.Fatalf("%d of %d requests answered after %v; want half", len(got), n, waitFor)
		}
	}
	px.Reset() // mid-batch: handlers running, acks held, requests prefetched
	killedAt := a.Stats()

	b, stopB := startWorker(t, worker.Config{URL: u, Queue: testQueue, Concurrency: 8}, registerSleep)
	c.collect(ids, got)
	stopB()
	if q := queued(t, u); q != 0 {
		t.Errorf("%d requests left in the queue; want 0", q)
	}
	// Every request answered at least once, none lost; those the first
	// worker had not acked came again.
	var answered int
	for id := range ids {
		if got[id] > 0 {
			answered++
		}
	}
	if answered != n {
		t.Errorf("%d of %d requests answered; want all", answered, n)
	}
	if rb := b.Stats().Received; rb == 0 || killedAt.Replied+rb < n {
		t.Errorf("first worker replied %d before it died, second received %d; want the second to receive every request the first left (≥ %d)",
			killedAt.Replied, rb, n-int(killedAt.Replied))
	}
	t.Logf("first worker: %d replied, %d acks; second: %d received (%d redelivered after being answered)",
		killedAt.Replied, killedAt.Acks, b.Stats().Received, int(killedAt.Replied)+int(b.Stats().Received)-n)
}
