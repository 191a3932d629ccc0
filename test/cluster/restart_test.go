package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/calls"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// events sends PlaceOrder calls and keeps the ids of those figway
// confirmed.
type events struct {
	mu        sync.Mutex
	confirmed map[string]time.Time // event id → when it was confirmed
}

func newEvents() *events { return &events{confirmed: map[string]time.Time{}} }

// call is a load call: one event, whose id is kept if figway confirms it.
func (e *events) call(orders ordersv1.OrderServiceClient) func(ctx context.Context, caller, seq int) error {
	return func(ctx context.Context, caller, seq int) error {
		var header metadata.MD
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := orders.PlaceOrder(ctx, &ordersv1.PlaceOrderRequest{CustomerId: fmt.Sprintf("c-%d-%d", caller, seq)}, grpc.Header(&header))
		if err != nil {
			return err
		}
		ids := header.Get("figway-event-id")
		if len(ids) != 1 {
			return fmt.Errorf("figway-event-id = %q; want one id", ids)
		}
		e.mu.Lock()
		e.confirmed[ids[0]] = time.Now()
		e.mu.Unlock()
		return nil
	}
}

// lost returns how many confirmed events w never consumed, waiting up to a
// minute for it to drain the queue, with the duplicates consumed and how
// many of the confirmed were confirmed before at.
func (e *events) lost(w *sdkWorker, at time.Time) (lost, dups, before int) {
	count := func() (lost, dups, before int) {
		e.mu.Lock()
		defer e.mu.Unlock()
		w.mu.Lock()
		defer w.mu.Unlock()
		for id, when := range e.confirmed {
			if w.events[id] == 0 {
				lost++
			}
			if when.Before(at) {
				before++
			}
		}
		for _, n := range w.events {
			dups += n - 1
		}
		return lost, dups, before
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if lost, _, _ := count(); lost == 0 || time.Now().After(deadline) {
			break
		}
	}
	return count()
}

// TestFullClusterRestart stops all three nodes, then starts them again,
// with figway running: while the cluster is down figway reports not ready
// and fails calls with UNAVAILABLE at once; once it is back, figway
// reconnects, declares its topology again and serves, with no restart.
// The events it confirmed before the stop, left in the queue with no
// worker to take them, are all consumed afterwards.
func TestFullClusterRestart(t *testing.T) {
	c := rabbitmq.ClusterForTest(t)
	urls := c.URLs()
	bin := proc.BuildFigway(t)
	fw := startFigway(t, bin, "figway", urls)
	orders := fw.orders()
	restartAfter(t, c)

	ev := newEvents()
	sent := calls.Start(context.Background(), 32, 50, ev.call(orders)).Wait()
	if s := summarize(sent, time.Now()); s.failed != 0 {
		t.Fatalf("%d of %d events failed before the stop (first: %v)", s.failed, s.calls, s.firstErr)
	}

	// A healthy cluster is stopped: every member of the queue online and
	// no partition recorded, as an operator checks before a planned stop
	// (see waitHealthy).
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	waitHealthy(t, ctx, c, queueOf(t))
	cancel()

	begin := time.Now()
	if err := stopAll(c); err != nil {
		t.Fatal(err)
	}
	t.Logf("all three nodes stopped in %v", time.Since(begin).Round(time.Millisecond))
	notReady := poll.Until(t, 10*time.Second, "figway not ready", func() bool { return figway.Get(t, "http://"+fw.admin+"/readyz") != http.StatusOK })
	// Calls while the cluster is down fail UNAVAILABLE at once, rpc and
	// event alike.
	var slowest time.Duration
	for i := range 20 {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		if i%2 == 0 {
			_, err = orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: fmt.Sprintf("down-%d", i)})
		} else {
			_, err = orders.PlaceOrder(ctx, &ordersv1.PlaceOrderRequest{CustomerId: fmt.Sprintf("down-%d", i)})
		}
		cancel()
		took := time.Since(start)
		slowest = max(slowest, took)
		if status.Code(err) != codes.Unavailable || took > time.Second {
			t.Errorf("call %d while the cluster is down: %v after %v; want UNAVAILABLE within 1s", i, err, took.Round(time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
	}

	up := time.Now()
	if err := restartAll(c); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	t.Logf("all three nodes started again in %v", started.Sub(up).Round(time.Millisecond))
	poll.Until(t, time.Minute, "figway ready again", func() bool { return figway.Get(t, "http://"+fw.admin+"/readyz") == http.StatusOK })
	ready := time.Since(started)
	w := startSDKWorker(t, order(urls, 1), 0, 64)
	poll.Until(t, time.Minute, "a call served", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "back"})
		return err == nil
	})
	served := time.Since(started)
	lost, dups, before := ev.lost(w, begin)
	t.Logf("figway not ready %v after the stop; calls while down failed UNAVAILABLE, the slowest in %v; after the start, figway ready in %v, a call served in %v (a worker started once figway was ready)",
		notReady.Round(time.Millisecond), slowest.Round(time.Millisecond), ready.Round(time.Millisecond), served.Round(time.Millisecond))
	t.Logf("events confirmed before the stop: %d; lost: %d; duplicates consumed: %d", before, lost, dups)
	if lost != 0 || before != len(sent) {
		t.Errorf("%d of %d confirmed events lost (%d sent); want 0", lost, before, len(sent))
		// What the broker says of the queue's restart: the cause of such
		// a loss is not known (docs/development.md).
		for _, n := range c.Nodes {
			t.Logf("what %s logged of the queue:\n%s", n.Name(), n.LogLines(80, queueOf(t), "quorum", "ra_", "meta.dets"))
		}
	}
	select {
	case <-fw.Exited:
		t.Errorf("figway exited: %v", fw.Err)
	default:
	}
}

// stopAll stops every node of c at once, cleanly.
func stopAll(c *rabbitmq.Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		wg.Go(func() { errs[i] = n.Stop(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// restartAll starts every node of c again, at once: each waits for the
// others to come back before it serves.
func restartAll(c *rabbitmq.Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return c.RestartDead(ctx)
}

// TestRollingRestart restarts the three nodes one at a time, as an
// operator's upgrade does — each stopped cleanly, started again, and the
// next stopped only once the request queue's member on it is back online
// — under 64 callers on a plain route, 64 on a retry: idempotent route and
// 16 senders of events: the retry: idempotent route sees no error, the
// plain one loses only calls made while a node stops (UNAVAILABLE), and
// no confirmed event is lost.
func TestRollingRestart(t *testing.T) {
	c := rabbitmq.ClusterForTest(t)
	urls := c.URLs()
	bin := proc.BuildFigway(t)
	fw := startFigway(t, bin, "figway", urls)
	w := startSDKWorker(t, order(urls, 1), 0, 64)
	orders := fw.orders()
	restartAfter(t, c)

	m := startMixedLoad(orders)
	defer m.stop()
	plain, retried, sent, ev := m.plain, m.retried, m.sent, m.ev

	// The upgrade starts on a healthy cluster (see waitHealthy); each of
	// its steps waits for every member of the queue to be online again.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	waitHealthy(t, ctx, c, queueOf(t))
	cancel()

	begin := time.Now()
	var stops []interval
	for _, n := range c.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		stopping := time.Now()
		if err := n.Stop(ctx); err != nil {
			cancel()
			t.Fatalf("stop %s: %v", n.Name(), err)
		}
		stopped := time.Now()
		stops = append(stops, interval{stopping, stopped})
		if err := n.Restart(ctx); err != nil {
			cancel()
			t.Fatalf("restart %s: %v", n.Name(), err)
		}
		restarted := time.Now()
		online := waitOnline(t, ctx, c, queueOf(t))
		cancel()
		t.Logf("%s: stopped in %v, started in %v, the queue's members all online %v later",
			n.Name(), stopped.Sub(stopping).Round(time.Millisecond), restarted.Sub(stopped).Round(time.Millisecond), online.Round(time.Millisecond))
	}
	took := time.Since(begin)
	time.Sleep(2 * time.Second)
	m.stop()
	ps, rs, es := summarize(plain.Wait(), begin), summarize(retried.Wait(), begin), summarize(sent.Wait(), begin)
	lost, dups, _ := ev.lost(w, begin)
	t.Logf("rolling restart of 3 nodes in %v", took.Round(time.Millisecond))
	t.Logf("plain route: %v", ps)
	t.Logf("retry: idempotent route: %v", rs)
	t.Logf("events: %v; %d confirmed, %d lost, %d duplicates consumed", es, len(ev.confirmed), lost, dups)
	if rs.failed != 0 {
		t.Errorf("retry: idempotent route: %d calls failed %v (first: %v); want none", rs.failed, rs.codes, rs.firstErr)
	}
	// A plain call is lost only while a node stops: it was in flight on
	// the stopping node's connection, or came before figway had connected
	// to another (docs/operations.md, "Running against a cluster").
	if n := failedOutsideStops(plain.Wait(), stops); n != 0 {
		t.Errorf("plain route: %d failed calls neither in flight at a stop nor made during one; want none", n)
	}
	for code, n := range ps.codes {
		if code != codes.Unavailable {
			t.Errorf("plain route: %d calls failed with %v (first: %v); want only UNAVAILABLE", n, code, ps.firstErr)
		}
	}
	if lost != 0 {
		t.Errorf("%d of %d confirmed events lost; want 0", lost, len(ev.confirmed))
	}
}

// interval is the time from one moment to another.
type interval struct{ from, to time.Time }

// failedOutsideStops counts the failed calls that were neither in flight
// at one of stops nor made during it: a node closes its connections while
// it stops, from the SIGTERM to its exit.
func failedOutsideStops(outs []calls.Outcome, stops []interval) int {
	n := 0
	for _, o := range outs {
		if o.Err == nil {
			continue
		}
		inFlight := false
		for _, s := range stops {
			if !o.End.Before(s.from) && o.Start.Before(s.to) {
				inFlight = true
			}
		}
		if !inFlight {
			n++
		}
	}
	return n
}

// waitOnline waits until every member of quorum queue name is online
// (rabbitmqctl list_queues online), and returns how long that took. An
// operator stops a node only then (RabbitMQ's upgrade guide: `rabbitmq-
// queues check_if_node_is_quorum_critical` before each stop): stopped 2 s
// after figway had declared the queue, before its other members were
// online, the node holding its leader left the queue unknown to the
// others on RabbitMQ 4.0 ("no queue", messages unroutable) for 10 s.
func waitOnline(t *testing.T, ctx context.Context, c *rabbitmq.Cluster, name string) time.Duration {
	t.Helper()
	return poll.Until(t, 3*time.Minute, "queue "+name+" members online", func() bool { return c.QueueOnline(ctx, name) })
}

// waitHealthy waits as waitOnline does, and then fails the test if the
// cluster records a network partition (see [rabbitmq.Cluster.Partitions]):
// its nodes' metadata differ then, and a stop can lose what only some of
// them know. An operator checks both before a planned stop.
func waitHealthy(t *testing.T, ctx context.Context, c *rabbitmq.Cluster, name string) {
	t.Helper()
	waitOnline(t, ctx, c, name)
	if p, err := c.Partitions(ctx); err != nil || len(p) != 0 {
		t.Fatalf("the cluster records a network partition, left by a test before this one: %v %v", p, err)
	}
}
