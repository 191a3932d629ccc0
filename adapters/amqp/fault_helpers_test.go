package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/figway/figway/adapters/amqp"
	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/poll"
)

// faultTopology is declared by the client after every connect: the rpc
// queue the echo worker consumes, a queue nobody consumes, and a durable
// queue for events.
var faultTopology = config.Topology{Queues: []config.Queue{
	{Name: "svc"},
	{Name: "silent"},
	{Name: "events", Durable: ptr(true)},
}}

// waiting starts n rpc calls to the queue nobody consumes, with a 30s
// deadline, and returns once all n wait for their reply; each call's
// error and end time arrive on the channel.
func waiting(t *testing.T, c *amqp.Client, n int) <-chan result {
	t.Helper()
	out := make(chan result, n)
	before := c.Stats().Pending
	for range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r := result{start: time.Now()}
			_, r.err = c.Call(ctx, "", "silent", request("test.v1.Svc/Get", "wait"))
			r.end = time.Now()
			out <- r
		}()
	}
	poll.Until(t, 5*time.Second, "calls waiting", func() bool { return c.Stats().Pending >= before+n })
	return out
}

// failedBy collects n results of waiting calls and returns the time from
// ref to the last of them (negative if all failed before ref), checking
// that each failed with UNAVAILABLE.
func failedBy(t *testing.T, calls <-chan result, n int, ref time.Time) time.Duration {
	t.Helper()
	last := time.Duration(math.MinInt64)
	for range n {
		select {
		case r := <-calls:
			if !errors.Is(r.err, gateway.ErrUnavailable) {
				t.Errorf("waiting call: %v; want UNAVAILABLE", r.err)
			}
			last = max(last, r.end.Sub(ref))
		case <-time.After(10 * time.Second):
			t.Fatalf("a waiting call did not end within 10s")
		}
	}
	return last
}

func ptr[T any](v T) *T { return &v }

// echoWorker answers every request on queue with echo, through faults.
func echoWorker(t *testing.T, url, queue string) {
	fault.StartWorker(t, url, queue, func(d *amqp091.Delivery) amqp091.Publishing {
		return amqp091.Publishing{ContentType: d.ContentType, Body: append([]byte("echo:"), d.Body...)}
	})
}

// result is one call of a load run.
type result struct {
	start, end time.Time
	err        error
	event      bool
	id         string // event message id
}

func (r result) took() time.Duration { return r.end.Sub(r.start) }

// load runs rpc calls and events against c from workers goroutines, each
// call with its own deadline, until stopped.
type load struct {
	c        *amqp.Client
	deadline time.Duration
	mu       sync.Mutex
	results  []result
	stop     chan struct{}
	wg       sync.WaitGroup
	n        atomic.Int64
}

func startLoad(c *amqp.Client, workers int, deadline time.Duration) *load {
	l := &load{c: c, deadline: deadline, stop: make(chan struct{})}
	for w := range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				// Failing calls return at once: pace them, so that the
				// load does not starve the goroutines being measured.
				pause := 2 * time.Millisecond
				if err := l.one(w%2 == 1); err != nil {
					pause = 10 * time.Millisecond
				}
				time.Sleep(pause)
			}
		})
	}
	return l
}

func (l *load) one(event bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.deadline)
	defer cancel()
	r := result{start: time.Now(), event: event}

	if event {
		ev := request("test.v1.Svc/Place", fmt.Sprint(l.n.Add(1)))
		ev.Persistent = true
		r.id = ev.MessageID
		r.err = l.c.Publish(ctx, "", "events", ev)
	} else {
		body := fmt.Sprint(l.n.Add(1))
		var rep *gateway.Reply
		rep, r.err = l.c.Call(ctx, "", "svc", request("test.v1.Svc/Get", body))
		if r.err == nil && string(rep.Body) != "echo:"+body {
			r.err = fmt.Errorf("cross talk: %q for %q", rep.Body, body)
		}
	}
	r.end = time.Now()
	l.mu.Lock()
	l.results = append(l.results, r)
	l.mu.Unlock()
	return r.err
}

func (l *load) halt() []result {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.results)
}

// successes counts the calls that started at or after since and succeeded.
func (l *load) successes(since time.Time) int { return l.count(since, true) }

// failures counts the calls that started at or after since and failed.
func (l *load) failures(since time.Time) int { return l.count(since, false) }

// count looks at the newest results only: they are in the order calls
// ended, and a call that ended before since did not start after it.
func (l *load) count(since time.Time, ok bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i := len(l.results) - 1; i >= 0 && !l.results[i].end.Before(since); i-- {
		if r := l.results[i]; (r.err == nil) == ok && !r.start.Before(since) {
			n++
		}
	}
	return n
}

// faultReport measures a load run around a fault at time fault (when the
// fault was certain) and a repair at time repaired.
type faultReport struct {
	// timeToFail: from the fault until every call in flight at the fault
	// had ended (0 if all ended before).
	timeToFail time.Duration
	// firstFailure: from the fault to the first call that failed.
	firstFailure time.Duration
	// slowestAfter: the longest call that started after the fault and
	// before the repair.
	slowestAfter time.Duration
	// timeToRecover: from the repair to the end of the first call that
	// started after it and succeeded.
	timeToRecover time.Duration
	// overDeadline: calls that took longer than their deadline +
	// deadlineSlack.
	overDeadline []result
	errs         map[string]int
}

// deadlineSlack is how late past its deadline a call may end and still
// count as answered in time: the deadline's timer fires on time, but on a
// loaded two-core box the caller's goroutine has run 209 ms after it
// (CI, while rabbitmqctl took 13 s). A call that hung would be seconds late.
const deadlineSlack = time.Second

func measure(rs []result, deadline time.Duration, fault, repaired time.Time) faultReport {
	rep := faultReport{timeToRecover: -1, firstFailure: -1, errs: map[string]int{}}
	for _, r := range rs {
		if r.took() > deadline+deadlineSlack {
			rep.overDeadline = append(rep.overDeadline, r)
		}
		if r.err != nil {
			rep.errs[kind(r.err)]++
		}
		if r.start.Before(fault) && r.end.After(fault) {
			rep.timeToFail = max(rep.timeToFail, r.end.Sub(fault))
		}
		if r.err != nil && r.end.After(fault) && (rep.firstFailure < 0 || r.end.Sub(fault) < rep.firstFailure) {
			rep.firstFailure = r.end.Sub(fault)
		}
		if !r.start.Before(fault) && r.start.Before(repaired) {
			rep.slowestAfter = max(rep.slowestAfter, r.took())
		}
		if r.err == nil && !r.start.Before(repaired) && (rep.timeToRecover < 0 || r.end.Sub(repaired) < rep.timeToRecover) {
			rep.timeToRecover = r.end.Sub(repaired)
		}
	}
	return rep
}

func kind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, gateway.ErrNotPublished):
		return "unavailable/not-published"
	case errors.Is(err, gateway.ErrChannelLost):
		return "unavailable/channel-lost"
	case errors.Is(err, gateway.ErrUnroutable):
		return "unavailable/unroutable"
	case errors.Is(err, gateway.ErrUnavailable):
		return "unavailable/other"
	}
	return "other: " + err.Error()
}

// noLeaks checks, after every cleanup of t has run, that no goroutine
// started during t outlived it.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// viaProxy returns rawURL with its host and port replaced by addr.
func viaProxy(t *testing.T, rawURL, addr string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// eventsIn drains queue and returns the message ids it held.
func eventsIn(t *testing.T, url, queue string) map[string]int {
	t.Helper()
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("get %s: %v", queue, err)
		}
		if !ok {
			return ids
		}
		ids[d.MessageId]++
	}
}
