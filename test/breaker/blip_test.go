package breaker_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/resilience"
)

// TestBlipIsNotAnOutage: 20 calls wait on a route with the default breaker
// (5 failures, open_for 10s) when the broker closes figway's connection
// (an operator's close_connection). The 20 fail at once with UNAVAILABLE;
// they say nothing about the route, so its breaker stays closed and the
// route serves its next call as soon as figway has reconnected — not
// open_for later.
func TestBlipIsNotAnOutage(t *testing.T) {
	node := rabbitmq.ForTest(t)
	url := node.NewVHost(t)
	var held atomic.Bool
	release := make(chan struct{})
	fault.StartWorker(t, url, "orders.get", func(d *amqp091.Delivery) amqp091.Publishing {
		if held.Load() {
			<-release // the calls wait until figway's connection is gone
		}
		return amqp091.Publishing{ContentType: d.ContentType}
	})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open) // before the worker stops
	g, c := figway(t, url, "  - {method: "+getOrder+", routing_key: orders.get, timeout: 5m}\n")
	route := g.Table().Lookup(getOrder)
	poll.Until(t, 10*time.Second, "first success", func() bool { _, err := invoke(g); return err == nil })

	held.Store(true)
	const n = 20
	type result struct {
		end time.Time
		err error
	}
	results := make(chan result, n)
	for range n {
		go func() {
			_, err := invoke(g)
			results <- result{time.Now(), err}
		}()
	}
	poll.Until(t, 10*time.Second, "20 calls waiting", func() bool { return c.Stats().Pending == n })

	// Watch for the reconnect at a millisecond's resolution. (rabbitmqctl
	// starts a VM of its own: on a loaded machine it may take a minute.)
	reconnected := make(chan time.Time, 1)
	go func() {
		for give := time.Now().Add(3 * time.Minute); time.Now().Before(give); time.Sleep(time.Millisecond) {
			if c.Stats().Reconnects > 0 && c.Ready() {
				reconnected <- time.Now()
				return
			}
		}
		close(reconnected)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if closed, err := node.CloseConnection(ctx, connName(t), "blip"); err != nil || closed != 1 {
		t.Fatalf("CloseConnection = %d, %v; want figway's one connection closed", closed, err)
	}
	var first, last time.Time
	for range n {
		select {
		case r := <-results:
			if gateway.Code(r.err) != codes.Unavailable || errors.Is(r.err, gateway.ErrBreakerOpen) {
				t.Errorf("waiting call: %v (%v); want UNAVAILABLE for the lost connection", r.err, gateway.Code(r.err))
			}
			if first.IsZero() || r.end.Before(first) {
				first = r.end
			}
			if r.end.After(last) {
				last = r.end
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a waiting call did not end within 10s of close_connection")
		}
	}
	open()
	if st := route.BreakerState(); st != resilience.BreakerClosed {
		t.Errorf("after %d calls lost with the connection: breaker %v; want closed", n, st)
	}

	back, ok := <-reconnected
	if !ok {
		t.Fatal("figway did not reconnect within 3 minutes")
	}
	var err error
	var served time.Time
	for give := back.Add(5 * time.Second); time.Now().Before(give); time.Sleep(time.Millisecond) {
		if _, err = invoke(g); err == nil {
			served = time.Now()
			break
		}
	}
	if served.IsZero() {
		t.Fatalf("no call served within 5s of the reconnect: %v (breaker %v)", err, route.BreakerState())
	}
	recovery := served.Sub(back)
	t.Logf("blip: %d waiting calls failed UNAVAILABLE within %v of each other; reconnected %v after the first failure; the route served its next call %v after the reconnect (breaker %v)",
		n, last.Sub(first), back.Sub(first), recovery, route.BreakerState())
	if spread := last.Sub(first); spread > 500*time.Millisecond {
		t.Errorf("the waiting calls failed over %v; want at once", spread)
	}
	if recovery > time.Second {
		t.Errorf("the route served again %v after the reconnect; want within 1s", recovery)
	}
}
