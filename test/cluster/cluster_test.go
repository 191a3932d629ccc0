package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/broker"
	"github.com/figway/figway/internal/testing/calls"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// The tests of this file kill nodes of the cluster shared by the test
// binary, one at a time, and restart them before they end: they must not
// run in parallel.

// callers is the number of concurrent callers per route under a kill.
const callers = 64

// TestKillFigwaysNode kills -9 the node figway is connected to while 64
// callers call a plain route and 64 a retry: idempotent one for ~10 s.
//
// leader_on_figways_node is the layout users get: figway's topology
// declares the quorum request queue, so its leader sits on figway's node,
// and the kill takes both. On RabbitMQ 3.10 the new connection's first
// publishes are nacked until the surviving replicas have elected a new
// leader. leader_elsewhere declares the queue through another node first,
// so the kill takes figway's connection only.
//
// Either way: on the retry: idempotent route no caller sees an error; on
// the plain route every call in flight ends at once (OK or UNAVAILABLE)
// and calls are served again soon after the kill; no breaker leaves
// closed; no call is refused for want of a consumer (the worker is on
// another node throughout).
func TestKillFigwaysNode(t *testing.T) {
	for _, layout := range []string{"leader_on_figways_node", "leader_elsewhere"} {
		t.Run(layout, func(t *testing.T) { killFigwaysNode(t, layout == "leader_on_figways_node") })
	}
}

func killFigwaysNode(t *testing.T, leaderWithFigway bool) {
	c := rabbitmq.ClusterForTest(t)
	urls := c.URLs()
	if !leaderWithFigway {
		declareQuorum(t, urls[1], queueOf(t))
	}
	bin := proc.BuildFigway(t)
	fw := startFigway(t, bin, "figway", urls)
	victim := fw.node(c)
	if victim != c.Nodes[0] {
		t.Fatalf("figway on %v; want node 0", victim)
	}
	leader := queueLeader(t, c, queueOf(t))
	if (leader == victim) != leaderWithFigway {
		t.Fatalf("the queue's leader is on %s, figway on %s; want them together: %v", leader.Name(), victim.Name(), leaderWithFigway)
	}
	w := startSDKWorker(t, order(urls, 1), 0, 64)

	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	orders := fw.orders()
	breakers := fw.watchBreakers()
	plain := calls.Start(ctx, callers, 100000, getOrderCall(orders, "get"))
	retried := calls.Start(ctx, callers, 100000, listOrdersCall(orders, "list"))
	time.Sleep(3 * time.Second)
	restartAfter(t, c)
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := victim.KilledAt()
	t.Logf("killed %s (figway's node; the queue's leader: %v) on RabbitMQ %s", victim.Name(), leaderWithFigway, broker.Version())
	ps, rs := summarize(plain.Wait(), killed), summarize(retried.Wait(), killed)
	breakers.end(t)
	t.Logf("plain route: %v", ps)
	t.Logf("retry: idempotent route: %v", rs)
	t.Logf("figway now on %s; worker redelivered %d requests; figway dropped %v unmatched replies; renewed %v channels; its log after the kill:%s",
		fw.node(c).Name(), w.redelivered(), fw.metric(t, "figway_replies_unmatched_total"),
		fw.metric(t, "figway_broker_channels_renewed_total"), fw.timeline(killed))

	// A call in flight at the kill on the plain route fails at once, or —
	// not published yet — waits for the reconnect and succeeds; on the
	// retry: idempotent route it waits for the reconnect and its reply.
	if ps.inFlightFailed > time.Second {
		t.Errorf("plain route: a call in flight at the kill failed %v after it; want within 1s", ps.inFlightFailed)
	}
	for name, s := range map[string]summary{"plain": ps, "retry: idempotent": rs} {
		if s.servedAgain < 0 || s.servedAgain > servedAgainWithin {
			t.Errorf("%s route: served again %v after the kill; want within %v", name, s.servedAgain, servedAgainWithin)
		}
		for code, n := range s.codes {
			if code != codes.Unavailable {
				t.Errorf("%s route: %d calls failed with %v (first error: %v); want only UNAVAILABLE", name, n, code, s.firstErr)
			}
		}
	}
	if rs.failed != 0 {
		t.Errorf("retry: idempotent route: %d calls failed (first: %v); want none", rs.failed, rs.firstErr)
	}
	if n := fw.node(c); n == victim {
		t.Errorf("figway still on the killed node")
	}
	fw.expectNoConsumerRefusals(t)
}

// servedAgainWithin bounds how long after figway's node is killed a call
// that started after the kill is answered again. On an idle machine it is
// the reconnect (~0.1 s) plus, when the leader died too, its election
// (~0.3 s); on a loaded two-core machine under -race the election alone
// has taken 3 s on RabbitMQ 3.10, which nacks publishes meanwhile.
// Measured figures are logged.
const servedAgainWithin = 5 * time.Second

// queueLeader returns the node holding the leader of the quorum queue
// name, in the default virtual host.
func queueLeader(t *testing.T, c *rabbitmq.Cluster, name string) *rabbitmq.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	leader, err := c.QueueLeader(ctx, "/", name)
	if err != nil {
		t.Fatal(err)
	}
	return leader
}

// TestKillQueueLeader kills -9 the node holding the request queue's leader
// — neither figway's nor the worker's — while 64 callers call: calls keep
// succeeding once a new leader is elected. It reports the errors and the
// longest gap between successes.
func TestKillQueueLeader(t *testing.T) {
	c := rabbitmq.ClusterForTest(t)
	urls := c.URLs()
	// The queue is declared through node 1 first, so its leader is there
	// (queue_leader_locator client-local); figway (node 0) declares it
	// again, as it does on every connect, and the worker is on node 2.
	declareQuorum(t, urls[1], queueOf(t))
	bin := proc.BuildFigway(t)
	fw := startFigway(t, bin, "figway", urls)
	startSDKWorker(t, order(urls, 2), 0, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	leader, err := c.QueueLeader(ctx, "/", queueOf(t))
	if err != nil {
		t.Fatal(err)
	}
	if leader != c.Nodes[1] || fw.node(c) != c.Nodes[0] {
		t.Fatalf("leader on %s, figway on %s; want node 1 and node 0", leader.Name(), fw.node(c).Name())
	}

	load, stop := context.WithTimeout(context.Background(), 6*time.Second)
	defer stop()
	breakers := fw.watchBreakers()
	l := calls.Start(load, callers, 100000, getOrderCall(fw.orders(), "get"))
	time.Sleep(2 * time.Second)
	restartAfter(t, c)
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := leader.KilledAt()
	outs := l.Wait()
	breakers.end(t)
	fw.expectNoConsumerRefusals(t)
	s := summarize(outs, killed)
	t.Logf("killed %s (the queue's leader): %v", leader.Name(), s)
	if s.servedAgain < 0 {
		t.Fatal("no call succeeded after the leader's node was killed")
	}
	// Calls keep succeeding: the last seconds of the load all succeed.
	late := 0
	for _, o := range outs {
		if o.Err != nil && o.Start.After(killed.Add(3*time.Second)) {
			late++
		}
	}
	if late > 0 {
		t.Errorf("%d calls started 3 s or more after the kill failed (first error: %v); want none", late, s.firstErr)
	}
	for code, n := range s.codes {
		if code != codes.Unavailable {
			t.Errorf("%d calls failed with %v (first error: %v); want only UNAVAILABLE", n, code, s.firstErr)
		}
	}
}

// declareQuorum declares the request queue as figway's topology does,
// through the node of url, so that its leader is on that node.
func declareQuorum(t *testing.T, u, queue string) {
	t.Helper()
	ch := rabbitmq.Channel(t, u)
	// name, durable, autoDelete, exclusive, noWait, args
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp091.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
}

// TestEventsSurviveNodeKill sends 10,000 events through figway while the
// node holding the queue's leader is killed -9 and restarted: every event
// figway confirmed to its caller is consumed by the worker afterwards — none
// lost; duplicates are counted.
func TestEventsSurviveNodeKill(t *testing.T) {
	const events, senders = 10000, 32
	c := rabbitmq.ClusterForTest(t)
	urls := c.URLs()
	// figway on node 0, which holds the queue's leader (figway's topology
	// declared the queue), the worker on node 2: the kill takes figway's
	// connection and the replica that holds the leader, and with it the
	// events only it had stored but not yet replicated — none of them
	// confirmed, since a quorum queue confirms once a majority has it.
	bin := proc.BuildFigway(t)
	fw := startFigway(t, bin, "figway", urls)
	victim := c.Nodes[0]
	if leader := queueLeader(t, c, queueOf(t)); leader != victim || fw.node(c) != victim {
		t.Fatalf("the queue's leader on %s, figway on %s; want both on node 0", leader.Name(), fw.node(c).Name())
	}
	w := startSDKWorker(t, order(urls, 2), 0, 64)
	orders := fw.orders()

	var (
		mu        sync.Mutex
		confirmed = map[string]bool{}
		sent      atomic.Int64
		killOnce  sync.Once
		killed    time.Time
		restarted = make(chan error, 1)
	)
	restartAfter(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	breakers := fw.watchBreakers()
	begin := time.Now()
	l := calls.Start(ctx, senders, events, func(ctx context.Context, caller, seq int) error {
		n := sent.Add(1)
		if n > events {
			return calls.ErrDone
		}
		if n == events/5 {
			// A fifth of the way: kill the leader's node, and bring it
			// back while the events go on.
			killOnce.Do(func() {
				if err := victim.Kill(); err != nil {
					restarted <- err
					return
				}
				killed = victim.KilledAt()
				go func() { restarted <- victim.Restart(context.Background()) }()
			})
		}
		var header metadata.MD
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := orders.PlaceOrder(ctx, &ordersv1.PlaceOrderRequest{CustomerId: fmt.Sprintf("c-%d-%d", caller, seq)}, grpc.Header(&header))
		if err == nil {
			ids := header.Get("figway-event-id")
			if len(ids) != 1 {
				return fmt.Errorf("figway-event-id = %q; want one id", ids)
			}
			mu.Lock()
			confirmed[ids[0]] = true
			mu.Unlock()
		}
		return err
	})
	outs := l.Wait()
	took := time.Since(begin)
	breakers.end(t)
	if killed.IsZero() {
		t.Fatal("the node was never killed")
	}
	s := summarize(outs, killed)
	if err := <-restarted; err != nil {
		t.Fatalf("restart %s: %v", victim.Name(), err)
	}
	t.Logf("%d events in %v, %s killed after %d and restarted %v after the kill: %v",
		len(outs), took.Round(time.Millisecond), victim.Name(), events/5, time.Since(killed).Round(time.Millisecond), s)

	// Every confirmed event reaches the worker; wait for the queue to drain.
	consumed := func() (lost, dups, extra int) {
		w.mu.Lock()
		defer w.mu.Unlock()
		for id := range confirmed {
			if w.events[id] == 0 {
				lost++
			}
		}
		for id, n := range w.events {
			dups += n - 1
			if !confirmed[id] {
				extra++
			}
		}
		return lost, dups, extra
	}
	drained := time.Now()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if lost, _, _ := consumed(); lost == 0 || time.Now().After(deadline) {
			break
		}
	}
	lost, dups, extra := consumed()
	t.Logf("events confirmed to callers: %d; lost: %d; duplicates consumed: %d; consumed though their caller got an error: %d (drained in %v)",
		len(confirmed), lost, dups, extra, time.Since(drained).Round(time.Millisecond))
	if lost != 0 {
		t.Errorf("%d of %d confirmed events never reached the worker; want 0", lost, len(confirmed))
	}
	if len(confirmed) < events/2 {
		t.Errorf("only %d of %d events confirmed; want most (errors: %v, first: %v)", len(confirmed), events, s.codes, s.firstErr)
	}
	for code, n := range s.codes {
		if code != codes.Unavailable {
			t.Errorf("%d events failed with %v (first error: %v); want only UNAVAILABLE", n, code, s.firstErr)
		}
	}
}

// TestKillWorkersNode kills -9 the node an SDK worker is connected to while
// it holds unacknowledged requests (each takes 300 ms): the worker resumes
// on another node, the requests are redelivered and answered
// (at-least-once), and every caller of figway gets exactly one reply, its
// own.
func TestKillWorkersNode(t *testing.T) {
	c := rabbitmq.ClusterForTest(t)
	urls := c.URLs()
	bin := proc.BuildFigway(t)
	fw := startFigway(t, bin, "figway", urls) // node 0, and the queue's leader
	w := startSDKWorker(t, order(urls, 1), 300*time.Millisecond, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	victim, err := c.NodeOf(ctx, "/", "figway-worker "+queueOf(t))
	if err != nil {
		t.Fatal(err)
	}
	if victim == fw.node(c) {
		t.Fatalf("worker and figway both on %s; want different nodes", victim.Name())
	}

	load, stop := context.WithTimeout(context.Background(), 6*time.Second)
	defer stop()
	breakers := fw.watchBreakers()
	l := calls.Start(load, callers, 100000, getOrderCall(fw.orders(), "get"))
	time.Sleep(2 * time.Second)
	// The kill must find requests in the worker's hands: on a loaded
	// machine its handlers can all be between calls at a given moment.
	poll.Until(t, 10*time.Second, "the worker holding requests", func() bool { return w.running.Load() > 0 })
	restartAfter(t, c)
	before := w.w.Stats()
	holding := w.running.Load() // requests in the worker's hands, unacknowledged
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := victim.KilledAt()
	s := summarize(l.Wait(), killed)
	breakers.end(t)
	fw.expectNoConsumerRefusals(t)
	after := w.w.Stats()
	t.Logf("killed %s (the worker's node) with %d requests in its handlers; worker connects %d→%d, received %d→%d, %d expired; %d requests ran more than once; figway dropped %v unmatched replies: %v",
		victim.Name(), holding, before.Connects, after.Connects, before.Received, after.Received, after.Expired,
		w.redelivered(), fw.metric(t, "figway_replies_unmatched_total"), s)
	if after.Connects <= before.Connects {
		t.Errorf("worker did not move off the killed node")
	}
	if s.failed != 0 {
		t.Errorf("%d calls failed %v (first: %v); want every caller answered", s.failed, s.codes, s.firstErr)
	}
	if w.redelivered() == 0 {
		t.Errorf("no request ran twice; want the worker's unacknowledged requests redelivered")
	}
}
