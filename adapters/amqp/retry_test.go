package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"

	"github.com/figway/figway/adapters/amqp"
	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proxy"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
)

// TestRPCRetryOverRealBroker kills the channel of an rpc call right after
// its request is written, so that the request reaches the worker and the
// reply cannot come back. On a retry: idempotent route the gateway
// publishes it once more, on another channel, with the same message id,
// and the caller gets the reply; on any other route the caller gets
// UNAVAILABLE and the request ran exactly once.
func TestRPCRetryOverRealBroker(t *testing.T) {
	const method = "orders.v1.OrderService/GetOrder"
	url := rabbitmq.ForTest(t).NewVHost(t)
	var mu sync.Mutex
	seen := map[string]int{} // message id → requests the worker got
	// killed has a value each time a channel the test killed is closed.
	killed := make(chan struct{}, 1)
	worker := fault.StartWorker(t, url, "orders.get", func(d *amqp091.Delivery) amqp091.Publishing {
		mu.Lock()
		seen[d.MessageId]++
		first := seen[d.MessageId] == 1
		mu.Unlock()
		if first && len(d.Body) == 0 {
			// The first delivery of a call whose channel the test kills
			// (the calls below have empty bodies, the warm-up call not):
			// reply once that channel is closed, so that the reply can
			// never make it back on it.
			select {
			case <-killed:
			case <-time.After(10 * time.Second): // the call fails its deadline first
			}
		}
		return amqp091.Publishing{ContentType: d.ContentType}
	})

	c := amqp.New(amqp.Config{URLs: []string{url}, Channels: 2,
		Topology: config.Topology{Queues: []config.Queue{{Name: "orders.get"}}},
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	// Right after a request marked for it is written, publish to a missing
	// exchange on the same channel: the broker closes the channel (404)
	// before the worker's reply can come back on it.
	var kill atomic.Bool
	amqp.SetAfterPublish(c, func(ch *amqp091.Channel, event bool) {
		if !event && kill.Swap(false) {
			closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
			ch.Publish("no-such-exchange", "k", false, false, amqp091.Publishing{})
			go func() {
				for range closed {
				}
				killed <- struct{}{}
			}()
		}
	})
	runClient(t, c)
	poll.Until(t, 10*time.Second, "worker consuming", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Call(ctx, "", "orders.get", request(method, "ping"))
		return err == nil
	})

	for _, tt := range []struct {
		retry string
		ok    bool
		runs  int // times the worker ran a request
	}{
		{"", false, 1},
		{"retry: idempotent, ", true, 2},
	} {
		name := "not idempotent"
		if tt.ok {
			name = "idempotent"
		}
		t.Run(name, func(t *testing.T) {
			mu.Lock()
			clear(seen)
			mu.Unlock()
			g := retryGateway(t, c, url, "3s", tt.retry)
			const calls = 5
			for i := range calls {
				poll.Until(t, 5*time.Second, "channels reopened", func() bool { return c.Stats().OpenChannels == 2 })
				before := worker.Received()
				kill.Store(true)
				start := time.Now()
				_, err := g.Invoke(context.Background(), &gateway.Call{Method: method, ContentType: wire.ContentTypeProtobuf, Accept: wire.ContentTypeProtobuf})
				took := time.Since(start)
				// The worker has the request by the time a reply or a retry
				// could have happened; wait for late deliveries to settle.
				poll.Until(t, 2*time.Second, "worker got the request", func() bool { return worker.Received() > before })
				if tt.ok != (err == nil) {
					t.Fatalf("call %d: %v after %v; want ok=%v", i, err, took, tt.ok)
				}
				if !tt.ok && (!errors.Is(err, gateway.ErrChannelLost) || gateway.Code(err) != 14) {
					t.Fatalf("call %d: %v; want UNAVAILABLE, channel lost after publishing", i, err)
				}
				// Known at once, not at the route's 3s timeout: the margin
				// holds on a loaded machine under -race.
				if took > 2500*time.Millisecond {
					t.Errorf("call %d took %v; want the loss known at once, well before the 3s timeout", i, took)
				}
			}
			// Each request ran exactly runs times, under one message id.
			mu.Lock()
			defer mu.Unlock()
			counts := map[int]int{}
			for id, n := range seen {
				if id != "" {
					counts[n]++
				}
			}
			t.Logf("%s: requests per message id: %v", name, counts)
			if counts[tt.runs] != calls || len(counts) != 1 {
				t.Errorf("requests per message id: %v; want all %d calls %d times", counts, calls, tt.runs)
			}
		})
	}
}

// retryGateway returns a gateway over c with one route, GetOrder to queue
// orders.get, with timeout and retry (e.g. "retry: idempotent, ").
func retryGateway(t *testing.T, c *amqp.Client, url, timeout, retry string) *gateway.Gateway {
	t.Helper()
	file := "descriptors: [orders.binpb]\nbroker: {url: \"" + url + "\"}\nroutes:\n" +
		fmt.Sprintf("  - {method: orders.v1.OrderService/GetOrder, routing_key: orders.get, timeout: %s, %sbreaker: {failures: 100}}\n", timeout, retry)
	cfg, err := config.Parse([]byte(file), "../../examples/orders")
	if err != nil {
		t.Fatal(err)
	}
	table, err := cfg.Table(nil)
	if err != nil {
		t.Fatal(err)
	}
	return gateway.New(gateway.Options{Publisher: c, Table: table})
}

// TestRetryWaitsForReconnect: while figway reconnects, a call on a retry:
// idempotent route waits for the new connection and succeeds; a call on
// any other route fails with UNAVAILABLE at once.
func TestRetryWaitsForReconnect(t *testing.T) {
	const method = "orders.v1.OrderService/GetOrder"
	node := rabbitmq.ForTest(t)
	url := node.NewVHost(t)
	echoWorker(t, url, "orders.get")
	p, err := proxy.Start(net.JoinHostPort("127.0.0.1", strconv.Itoa(node.Port())))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := startClient(t, amqp.Config{URLs: []string{viaProxy(t, url, p.Addr())}, Channels: 1,
		Topology: config.Topology{Queues: []config.Queue{{Name: "orders.get"}}}})
	gw := func(retry string) *gateway.Gateway { return retryGateway(t, c, url, "5s", retry) }
	call := func(g *gateway.Gateway) (time.Duration, error) {
		start := time.Now()
		_, err := g.Invoke(context.Background(), &gateway.Call{Method: method, ContentType: wire.ContentTypeProtobuf, Accept: wire.ContentTypeProtobuf})
		return time.Since(start), err
	}
	poll.Until(t, 10*time.Second, "worker answering", func() bool { _, err := call(gw("")); return err == nil })

	const outage = 300 * time.Millisecond
	for _, tt := range []struct {
		name, retry string
	}{{"not idempotent", ""}, {"idempotent", "retry: idempotent, "}} {
		t.Run(tt.name, func(t *testing.T) {
			g := gw(tt.retry)
			p.Reset() // connections reset, new ones refused
			poll.Until(t, 5*time.Second, "connection lost", func() bool { return !c.Ready() })
			go func() { time.Sleep(outage); p.Pass() }()
			took, err := call(g)
			t.Logf("%s: call during the outage: %v after %v", tt.name, err, took.Round(time.Millisecond))
			if tt.retry == "" {
				if gateway.Code(err) != codes.Unavailable || took > outage {
					t.Errorf("call = %v after %v; want UNAVAILABLE at once", err, took)
				}
			} else if err != nil {
				t.Errorf("call = %v after %v; want the reply once reconnected", err, took)
			}
			waitReady(t, c, 10*time.Second)
		})
	}
}
