package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"

	"github.com/figway/figway/adapters/amqp"
	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/app"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/resilience"
	"github.com/figway/figway/wire"
)

const getOrder = "orders.v1.OrderService/GetOrder"

// startWorker answers every request on "orders.get" with the status in
// status (OK when 0).
func startWorker(t *testing.T, url string, status *atomic.Int32) *fault.Worker {
	return fault.StartWorker(t, url, "orders.get", func(d *amqp091.Delivery) amqp091.Publishing {
		h := amqp091.Table{}
		if s := status.Load(); s != 0 {
			h["figway-status"] = s
			h["figway-message"] = "service says no"
		}
		return amqp091.Publishing{ContentType: d.ContentType, Headers: h}
	})
}

// figway runs a gateway over an AMQP client against url, with routesYAML
// as its routes and the orders example's descriptors.
func figway(t *testing.T, url, routesYAML string) (*gateway.Gateway, *amqp.Client) {
	t.Helper()
	file := "descriptors: [orders.binpb]\nbroker: {url: \"" + url + "\"}\nroutes:\n" + routesYAML +
		"topology:\n  queues: [{name: orders.get}]\n"
	cfg, err := config.Parse([]byte(file), "../../examples/orders")
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	table, err := cfg.Table(nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	broker, err := app.BrokerConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	broker.Logger, broker.Name = log, connName(t)
	c := amqp.New(broker)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	poll.Until(t, 10*time.Second, "client ready", c.Ready)
	return gateway.New(gateway.Options{Publisher: c, Table: table, Logger: log}), c
}

// connName is the connection name of the test's figway, as the broker
// lists it.
func connName(t *testing.T) string { return "figway " + t.Name() }

func invoke(g *gateway.Gateway) (time.Duration, error) {
	start := time.Now()
	_, err := g.Invoke(context.Background(), &gateway.Call{
		Method: getOrder, ContentType: wire.ContentTypeProtobuf, Accept: wire.ContentTypeProtobuf,
	})
	return time.Since(start), err
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// TestBreakerOverRealBroker: a route's breaker opens on exactly its
// failures, refuses without publishing (the worker receives nothing more),
// probes after open_for and closes again when the service itself answers
// UNAVAILABLE; when the broker is killed, calls fail at once without
// counting, and the route serves as soon as the broker is back.
func TestBreakerOverRealBroker(t *testing.T) {
	const failures, openFor = 3, time.Second
	node := rabbitmq.Own(t)
	var status atomic.Int32
	w := startWorker(t, node.URL(), &status)
	g, c := figway(t, node.URL(), fmt.Sprintf(
		"  - {method: %s, routing_key: orders.get, timeout: 2s, breaker: {failures: %d, open_for: %v, half_open_requests: 1}}\n",
		getOrder, failures, openFor))
	route := g.Table().Lookup(getOrder)
	poll.Until(t, 10*time.Second, "first success", func() bool { _, err := invoke(g); return err == nil })

	t.Run("service_unavailable", func(t *testing.T) {
		status.Store(int32(codes.Unavailable))
		before := w.Received()
		var opened time.Time // before the breaker opened
		for i := range failures {
			opened = time.Now()
			if _, err := invoke(g); gateway.Code(err) != codes.Unavailable || errors.Is(err, gateway.ErrBreakerOpen) {
				t.Fatalf("call %d: %v; want the service's UNAVAILABLE", i+1, err)
			}
		}
		if st := route.BreakerState(); st != resilience.BreakerOpen {
			t.Fatalf("after %d failures: breaker %v; want open", failures, st)
		}
		var slowest time.Duration
		for range 20 {
			took, err := invoke(g)
			if !errors.Is(err, gateway.ErrBreakerOpen) || gateway.Code(err) != codes.Unavailable {
				t.Fatalf("call on an open breaker: %v; want ErrBreakerOpen, UNAVAILABLE", err)
			}
			slowest = max(slowest, took)
		}
		if got := w.Received() - before; got != failures {
			t.Errorf("worker received %d requests; want exactly %d (none while open)", got, failures)
		}
		t.Logf("service_unavailable: open after exactly %d failures; 20 calls refused, slowest in %v, none published", failures, slowest)
		if slowest > 50*time.Millisecond {
			t.Errorf("an open breaker took %v to refuse; want at once", slowest)
		}

		// After open_for, one probe: the service is well again.
		status.Store(0)
		poll.Until(t, openFor+2*time.Second, "breaker half-open", func() bool { return route.BreakerState() == resilience.BreakerHalfOpen })
		halfOpen := time.Since(opened)
		if _, err := invoke(g); err != nil {
			t.Fatalf("probe: %v", err)
		}
		if st := route.BreakerState(); st != resilience.BreakerClosed {
			t.Errorf("after a successful probe: breaker %v; want closed", st)
		}
		t.Logf("service_unavailable: half-open %v after opening (open_for %v), closed by one probe", halfOpen, openFor)
		if halfOpen < openFor {
			t.Errorf("half-open after %v; want not before open_for %v", halfOpen, openFor)
		}
	})

	t.Run("kill_9_restart", func(t *testing.T) {
		if err := node.Kill(); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		// Not connected: each call fails at once, and says nothing about
		// the route: the breaker does not count it, and stays closed.
		poll.Until(t, 5*time.Second, "client not ready", func() bool { return !c.Ready() })
		var slowest time.Duration
		for range 2 * failures {
			took, err := invoke(g)
			if !errors.Is(err, gateway.ErrNotPublished) || gateway.Code(err) != codes.Unavailable {
				t.Fatalf("call while the broker is down: %v; want UNAVAILABLE, not published", err)
			}
			slowest = max(slowest, took)
		}
		if st := route.BreakerState(); st != resilience.BreakerClosed {
			t.Errorf("after %d calls failed for want of a connection: breaker %v; want closed", 2*failures, st)
		}
		t.Logf("kill_9_restart: down %v after the kill; %d calls refused, slowest in %v, breaker closed", time.Since(killed), 2*failures, slowest)
		if slowest > 50*time.Millisecond {
			t.Errorf("a call took %v to fail while the broker was down; want at once", slowest)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := node.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		var err error
		for time.Since(back) < 10*time.Second {
			if _, err = invoke(g); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		recovered := time.Since(back)
		t.Logf("kill_9_restart: calls succeed through the gateway %v after the broker's return (backoff cap 2s)", recovered)
		if err != nil || recovered > 5*time.Second {
			t.Errorf("success resumed %v after the broker's return (%v); want within 5s", recovered, err)
		}
	})
}

// TestRefusingQueueOpensBreaker: a queue that keeps refusing publishes —
// at its length limit with x-overflow reject-publish, so the broker nacks
// every one — opens its route's breaker once the refusals have lasted
// the refusal grace (10 s): a brief run of nacks, as in a quorum queue's
// leader election, opens nothing (docs/errors.md, "Circuit breaker").
func TestRefusingQueueOpensBreaker(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	ch := rabbitmq.Channel(t, url)
	// name, durable, autoDelete, exclusive, noWait, args
	if _, err := ch.QueueDeclare("full", true, false, false, false, amqp091.Table{
		"x-max-length": int64(0), "x-overflow": "reject-publish",
	}); err != nil {
		t.Fatal(err)
	}
	g, _ := figway(t, url, "  - {method: orders.v1.OrderService/PlaceOrder, routing_key: full, pattern: event, breaker: {failures: 5, open_for: 1h}}\n")
	route := g.Table().Lookup("orders.v1.OrderService/PlaceOrder")
	place := func() error {
		_, err := g.Invoke(context.Background(), &gateway.Call{Method: "orders.v1.OrderService/PlaceOrder",
			ContentType: wire.ContentTypeProtobuf, Accept: wire.ContentTypeProtobuf})
		return err
	}
	start := time.Now()
	nacked, firstOpen := 0, time.Duration(-1)
	for time.Since(start) < 20*time.Second {
		err := place()
		switch {
		case errors.Is(err, gateway.ErrBreakerOpen):
			firstOpen = time.Since(start)
		case errors.Is(err, gateway.ErrNacked) && gateway.Code(err) == codes.Unavailable:
			nacked++
			if route.BreakerState() == resilience.BreakerOpen && time.Since(start) < resilience.DefaultRefusalGrace {
				t.Fatalf("breaker open %v after the first nack; want closed for %v", time.Since(start), resilience.DefaultRefusalGrace)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		default:
			t.Fatalf("publish to a refusing queue: %v; want UNAVAILABLE, nacked", err)
		}
		break
	}
	t.Logf("%d publishes nacked; the breaker refused the first call %v after the first nack", nacked, firstOpen)
	if firstOpen < resilience.DefaultRefusalGrace {
		t.Errorf("breaker opened %v after the first nack; want after the %v grace, and soon after it", firstOpen, resilience.DefaultRefusalGrace)
	}
}
