package gateway_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/resilience"
)

// counted is a publisher that also counts consumers, as adapters/amqp does.
type counted struct {
	*publisher
	counts   map[string]int // absent: unknown
	watched  []string
	recounts int
}

func (c *counted) WatchQueues(queues []string) { c.watched = slices.Clone(queues) }

func (c *counted) Consumers(queue string) (int, bool) {
	n, ok := c.counts[queue]
	return n, ok
}

func (c *counted) Recount(context.Context) { c.recounts++ }

// legacyOK answers every call with an empty message.
type legacyOK struct{ calls int }

func (l *legacyOK) Unary(context.Context, string, []byte, metadata.MD) ([]byte, metadata.MD, metadata.MD, error) {
	l.calls++
	return nil, nil, nil, nil
}

// TestNoConsumer: an rpc call to a route whose queue is known to have no
// consumer is not published: it fails with UNAVAILABLE, or goes to legacy
// on a fallback route, without asking the breaker (failures: 1 here): the
// count is looked at again at every call, so a returning worker is served
// at once, where an open breaker would refuse for open_for. An unknown
// count, a consumer, or an event route publish as before.
func TestNoConsumer(t *testing.T) {
	const routes = "  - {method: " + getOrder + ", routing_key: orders.get, breaker: {failures: 1, open_for: 1h}}\n" +
		"  - {method: " + placeOrder + ", routing_key: orders.placed, pattern: event, breaker: {failures: 1, open_for: 1h}}\n" +
		"  - {method: orders.v1.OrderService/CancelOrder, exchange: orders, routing_key: orders.cancel, fallback: legacy, breaker: {failures: 1, open_for: 1h}}\n" +
		"topology:\n  exchanges: [{name: orders, type: topic}]\n  queues: [{name: orders.requests, bind: {exchange: orders, key: \"orders.#\"}}]\n"
	file := "descriptors: [orders.binpb]\nbroker: {url: \"amqp://127.0.0.1:5672/\"}\nlegacy: {grpc: 127.0.0.1:1}\nroutes:\n" + routes
	cfg, err := config.Parse([]byte(file), "../examples/orders")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		method    string
		counts    map[string]int
		code      codes.Code
		published int64
		legacy    int
		open      bool
		recounts  int
	}{
		{"no consumer", getOrder, map[string]int{"orders.get": 0}, codes.Unavailable, 0, 0, false, 1},
		{"a consumer", getOrder, map[string]int{"orders.get": 1}, codes.OK, 1, 0, false, 0},
		{"unknown", getOrder, nil, codes.OK, 1, 0, false, 0},
		{"event, no consumer", placeOrder, map[string]int{"orders.placed": 0}, codes.OK, 1, 0, false, 0},
		{"fallback, no consumer", "orders.v1.OrderService/CancelOrder", map[string]int{"orders.requests": 0}, codes.OK, 0, 1, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, err := cfg.Table(nil)
			if err != nil {
				t.Fatal(err)
			}
			p := &counted{publisher: &publisher{fn: replyOK}, counts: tc.counts}
			l := &legacyOK{}
			g := gateway.New(gateway.Options{Publisher: p, Table: tb, Legacy: l})
			if want := []string{"orders.get", "orders.placed", "orders.requests"}; !slices.Equal(p.watched, want) {
				t.Errorf("watched %v; want %v", p.watched, want)
			}
			_, err = g.Invoke(context.Background(), call(tc.method))
			if gateway.Code(err) != tc.code {
				t.Errorf("Invoke = %v (%v); want %v", err, gateway.Code(err), tc.code)
			}
			if tc.code == codes.Unavailable && (!errors.Is(err, gateway.ErrNoConsumer) || err.Error() != getOrder+": broker unavailable: no consumer on queue orders.get") {
				t.Errorf("Invoke = %q; want ErrNoConsumer naming the queue", err)
			}
			// Figway's own words: the caller reads them whole.
			if msg := gateway.Status(err).Message(); tc.code == codes.Unavailable && msg != "broker unavailable: no consumer on queue orders.get" {
				t.Errorf("caller's message = %q; want the queue named", msg)
			}
			if got := p.calls.Load(); got != tc.published {
				t.Errorf("%d published; want %d", got, tc.published)
			}
			if p.recounts != tc.recounts {
				t.Errorf("%d recounts; want %d: one before a call is refused for want of a consumer", p.recounts, tc.recounts)
			}
			if l.calls != tc.legacy {
				t.Errorf("%d calls to legacy; want %d", l.calls, tc.legacy)
			}
			if open := g.Table().Lookup(tc.method).BreakerState() == resilience.BreakerOpen; open != tc.open {
				t.Errorf("breaker open = %v; want %v", open, tc.open)
			}
			wantN, wantKnown := 0, false
			for _, n := range tc.counts {
				wantN, wantKnown = n, true
			}
			if n, known := g.RouteConsumers(tc.method); n != wantN || known != wantKnown {
				t.Errorf("RouteConsumers = %d, %v; want %d, %v", n, known, wantN, wantKnown)
			}
		})
	}
}

// TestNoConsumerContradictedByReplies: a count of no consumer is not acted
// on while the route's own calls are being answered — a reply within the
// last second proves a worker, whatever a lagging count says — and is
// once the replies stop.
func TestNoConsumerContradictedByReplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := table(t, "  - {method: "+getOrder+", routing_key: orders.get}\n", nil)
		p := &counted{publisher: &publisher{fn: replyOK}, counts: map[string]int{"orders.get": 0}}
		g := gateway.New(gateway.Options{Publisher: p, Table: tb})
		if _, err := g.Invoke(context.Background(), call(getOrder)); !errors.Is(err, gateway.ErrNoConsumer) {
			t.Fatalf("no consumer, no reply yet: Invoke = %v; want ErrNoConsumer", err)
		}
		p.counts["orders.get"] = 1
		if _, err := g.Invoke(context.Background(), call(getOrder)); err != nil {
			t.Fatalf("a consumer: Invoke = %v", err)
		}
		// The count says 0 again, but a reply came back just now.
		p.counts["orders.get"] = 0
		time.Sleep(900 * time.Millisecond)
		if _, err := g.Invoke(context.Background(), call(getOrder)); err != nil {
			t.Fatalf("count 0, a reply 0.9 s ago: Invoke = %v; want it published", err)
		}
		time.Sleep(900 * time.Millisecond) // that call's reply is 0.9 s old now
		if _, err := g.Invoke(context.Background(), call(getOrder)); err != nil {
			t.Fatalf("count 0, a reply 0.9 s ago: Invoke = %v; want it published", err)
		}
		time.Sleep(1001 * time.Millisecond)
		published := p.calls.Load()
		if _, err := g.Invoke(context.Background(), call(getOrder)); !errors.Is(err, gateway.ErrNoConsumer) {
			t.Errorf("count 0, last reply over 1 s ago: Invoke = %v; want ErrNoConsumer", err)
		}
		if p.calls.Load() != published {
			t.Errorf("the refused call was published")
		}
		if n := g.Migration(getOrder).NoConsumer; n != 2 {
			t.Errorf("Migration().NoConsumer = %d; want 2 (the calls refused)", n)
		}
		// A reload keeps what the route's replies proved.
		p.counts["orders.get"] = 1
		g.Invoke(context.Background(), call(getOrder))
		p.counts["orders.get"] = 0
		g.SetTable(table(t, "  - {method: "+getOrder+", routing_key: orders.get, timeout: 7s}\n", g.Table()))
		if _, err := g.Invoke(context.Background(), call(getOrder)); err != nil {
			t.Errorf("after a reload, count 0, a reply just now: Invoke = %v; want it published", err)
		}
	})
}
