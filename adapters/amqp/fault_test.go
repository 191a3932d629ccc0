package amqp_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/adapters/amqp"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/proxy"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/resilience"
)

// The fault tests run rpc calls and events under load, inject a fault, and
// measure from the moment the fault is certain (the command that caused it
// has returned): how long until every call in flight has failed, how long
// calls made during the fault take, and how long after the repair until
// calls succeed again. Every number is logged.

const (
	loadWorkers  = 8
	loadDeadline = 2 * time.Second
)

// faultClient runs a client with production backoff (100 ms to 2 s) and
// the fault topology.
func faultClient(t *testing.T, url string, heartbeat time.Duration) *amqp.Client {
	t.Helper()
	return startClient(t, amqp.Config{
		URLs:      []string{url},
		Channels:  4,
		Heartbeat: heartbeat,
		Topology:  faultTopology,
		Backoff:   resilience.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second},
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}

// warm starts the load and waits until calls and events succeed.
func warm(t *testing.T, c *amqp.Client) *load {
	t.Helper()
	ld := startLoad(c, loadWorkers, loadDeadline)
	poll.Until(t, 10*time.Second, "load warm", func() bool { return ld.successes(time.Time{}) >= 50 })
	return ld
}

// checkReport applies the criteria every fault shares and logs the numbers.
func checkReport(t *testing.T, name string, rs []result, rep faultReport, failWithin, recoverWithin time.Duration) {
	t.Helper()
	t.Logf("%s: %d calls; time to fail (calls in flight) %v; first failure %v after the fault; slowest call during the fault %v; time to recover %v; errors %v",
		name, len(rs), rep.timeToFail, rep.firstFailure, rep.slowestAfter, rep.timeToRecover, rep.errs)
	for i, r := range rep.overDeadline {
		if i == 3 {
			break
		}
		t.Errorf("%s: a call took %v (err %v); want every call answered within its deadline %v + %v", name, r.took(), r.err, loadDeadline, deadlineSlack)
	}
	if failWithin > 0 && rep.timeToFail > failWithin {
		t.Errorf("%s: calls in flight at the fault ended %v after it; want within %v", name, rep.timeToFail, failWithin)
	}
	if rep.timeToRecover < 0 || rep.timeToRecover > recoverWithin {
		t.Errorf("%s: success resumed %v after the repair; want within %v", name, rep.timeToRecover, recoverWithin)
	}
	for k, n := range rep.errs {
		if k[:5] == "other" {
			t.Errorf("%s: %d unexpected errors: %s", name, n, k)
		}
	}
}

// checkEvents checks that every event confirmed to a caller is in the
// durable events queue, and drains it.
func checkEvents(t *testing.T, name, url string, rs []result) {
	t.Helper()
	in := eventsIn(t, url, "events")
	confirmed, missing := 0, 0
	for _, r := range rs {
		if r.event && r.err == nil {
			confirmed++
			if in[r.id] == 0 {
				missing++
			}
		}
	}
	t.Logf("%s: %d events confirmed, %d messages in the durable queue, %d confirmed events missing", name, confirmed, len(in), missing)
	if missing > 0 {
		t.Errorf("%s: %d of %d confirmed events missing from the durable queue", name, missing, confirmed)
	}
}

// TestBrokerFaults injects the faults that need a broker of their own, one
// after the other on one node: close_all_connections, a memory alarm, and
// kill -9 then restart.
func TestBrokerFaults(t *testing.T) {
	noLeaks(t)
	node := rabbitmq.Own(t)
	url := node.URL()

	t.Run("waiting_calls_fail_on_close", func(t *testing.T) { connectionClosedFailsWaitingCalls(t, node) })
	t.Run("blocked_refuses_calls", func(t *testing.T) { blockedConnectionRefusesCalls(t, node) })

	t.Run("close_all_connections", func(t *testing.T) {
		c := faultClient(t, url, 0)
		echoWorker(t, url, "svc")
		ld := warm(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ctlStart := time.Now()
		if err := node.CloseAllConnections(ctx); err != nil {
			t.Fatal(err)
		}
		faulted := time.Now()
		poll.Until(t, 10*time.Second, "success after close_all_connections", func() bool { return ld.successes(faulted) >= 20 })
		rs := ld.halt()
		rep := measure(rs, loadDeadline, faulted, faulted)
		fromStart := measure(rs, loadDeadline, ctlStart, faulted)
		t.Logf("close_all_connections: rabbitmqctl took %v; calls in flight when it started had all failed %v after it started (first failure after %v)",
			faulted.Sub(ctlStart), fromStart.timeToFail, fromStart.firstFailure)
		checkReport(t, "close_all_connections", rs, rep, 500*time.Millisecond, 5*time.Second)
		checkEvents(t, "close_all_connections", url, rs)
		if got := c.Stats().Reconnects; got < 1 {
			t.Errorf("reconnects = %d; want ≥ 1", got)
		}
	})

	t.Run("memory_alarm", func(t *testing.T) {
		c := faultClient(t, url, 0)
		echoWorker(t, url, "svc")
		ld := warm(t, c)
		const n = 20
		calls := waiting(t, c, n)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := node.SetMemoryHighWatermark(ctx, 0.000001); err != nil {
			t.Fatal(err)
		}
		alarm := time.Now()
		// The broker blocks a connection when it next publishes: under
		// load, at once.
		poll.Until(t, 5*time.Second, "client blocked", func() bool { return c.Stats().Blocked })
		blockedSeen := time.Now()
		// The alarm is certain once set_vm_memory_high_watermark returned.
		lastFailed := failedBy(t, calls, n, alarm)
		t.Logf("memory_alarm: %d calls waiting for replies had all failed %v after set_vm_memory_high_watermark returned (negative: before it returned)", n, lastFailed)
		// At once, not at their 30s deadline: a margin that holds on a
		// loaded machine under -race (the figure is logged above).
		if lastFailed > 3*time.Second {
			t.Errorf("memory_alarm: waiting calls failed %v after the alarm was set; want at once, well before their 30s deadline", lastFailed)
		}
		// Run the load under the alarm for a while.
		poll.Until(t, 5*time.Second, "calls refused under the alarm", func() bool { return ld.failures(blockedSeen) >= 100 })
		if err := node.SetMemoryHighWatermark(ctx, 0.4); err != nil {
			t.Fatal(err)
		}
		cleared := time.Now()
		poll.Until(t, 10*time.Second, "success after the alarm cleared", func() bool { return ld.successes(cleared) >= 20 })
		rs := ld.halt()

		// The block is certain when the first call fails with it.
		first := measure(rs, loadDeadline, alarm, cleared)
		blocked := alarm.Add(first.firstFailure)
		rep := measure(rs, loadDeadline, blocked, cleared)
		t.Logf("memory_alarm: first call refused %v after set_vm_memory_high_watermark returned; client reported blocked %v after", first.firstFailure, blockedSeen.Sub(alarm))
		// The calls' deadline is loadDeadline: "at once" is well under it,
		// with room for a loaded two-core machine under -race, where a
		// refused call has taken 250 ms.
		checkReport(t, "memory_alarm", rs, rep, time.Second, 5*time.Second)
		if rep.slowestAfter > time.Second {
			t.Errorf("memory_alarm: a call made under the alarm took %v; want refused within 1s", rep.slowestAfter)
		}
		for _, r := range rs {
			if r.err != nil && !errors.Is(r.err, gateway.ErrUnavailable) {
				t.Errorf("memory_alarm: %v; want UNAVAILABLE", r.err)
				break
			}
		}
		checkEvents(t, "memory_alarm", url, rs)
	})

	t.Run("kill_9_restart", func(t *testing.T) {
		c := faultClient(t, url, 0)
		echoWorker(t, url, "svc")
		ld := warm(t, c)
		const n = 20
		calls := waiting(t, c, n)
		killStart := time.Now()
		if err := node.Kill(); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		lastFailed := failedBy(t, calls, n, killStart)
		t.Logf("kill_9_restart: %d calls waiting for replies had all failed %v after SIGKILL was sent (Kill returned after %v)", n, lastFailed, killed.Sub(killStart))
		if lastFailed > 3*time.Second {
			t.Errorf("kill_9_restart: waiting calls failed %v after the kill; want at once, well before their 30s deadline", lastFailed)
		}
		// Down for the time a restart takes; calls fail fast meanwhile.
		poll.Until(t, 5*time.Second, "client not ready", func() bool { return !c.Ready() })
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := node.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		poll.Until(t, 10*time.Second, "success after restart", func() bool { return ld.successes(back) >= 20 })
		rs := ld.halt()
		rep := measure(rs, loadDeadline, killed, back)
		fromStart := measure(rs, loadDeadline, killStart, back)
		t.Logf("kill_9_restart: Kill took %v (SIGKILL until the port refuses); calls in flight at SIGKILL had all failed %v after it; broker down for %v",
			killed.Sub(killStart), fromStart.timeToFail, back.Sub(killed))
		checkReport(t, "kill_9_restart", rs, rep, 500*time.Millisecond, 5*time.Second)
		if rep.slowestAfter > 500*time.Millisecond {
			t.Errorf("kill_9_restart: a call made while the broker was down took %v; want it refused at once", rep.slowestAfter)
		}
		checkEvents(t, "kill_9_restart", url, rs)
	})
}

// TestProxyFaults puts a TCP proxy between the client and the shared
// broker: latency, a black hole (heartbeats must notice), and resets.
func TestProxyFaults(t *testing.T) {
	node := rabbitmq.ForTest(t)
	noLeaks(t)
	direct := node.NewVHost(t)
	p, err := proxy.Start(net.JoinHostPort("127.0.0.1", strconv.Itoa(node.Port())))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const heartbeat = 2 * time.Second // the default
	c := faultClient(t, viaProxy(t, direct, p.Addr()), heartbeat)
	echoWorker(t, direct, "svc")

	t.Run("latency", func(t *testing.T) {
		ld := warm(t, c)
		const delay = 300 * time.Millisecond
		p.Latency(delay)
		slow := time.Now()
		// Calls still succeed, each at least two delays long; a call whose
		// deadline is shorter than that ends at its deadline.
		poll.Until(t, 10*time.Second, "calls through the latency", func() bool { return ld.successes(slow) >= 20 })
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		start := time.Now()
		_, err := c.Call(ctx, "", "svc", request("test.v1.Svc/Get", "short"))
		short := time.Since(start)
		cancel()
		p.Pass()
		rs := ld.halt()
		minTook := time.Hour
		for _, r := range rs {
			if r.err == nil && !r.event && r.start.After(slow.Add(100*time.Millisecond)) && r.end.Before(time.Now().Add(-delay)) {
				minTook = min(minTook, r.took())
			}
		}
		t.Logf("latency %v each way: fastest rpc %v; a 400ms-deadline call ended after %v with %v", delay, minTook, short, err)
		if !errors.Is(err, context.DeadlineExceeded) || short > 600*time.Millisecond {
			t.Errorf("400ms-deadline call through %v latency: %v after %v; want DEADLINE_EXCEEDED within 600ms", delay, err, short)
		}
		if minTook < 2*delay {
			t.Errorf("fastest rpc through %v latency each way took %v; want ≥ %v", delay, minTook, 2*delay)
		}
		if c.Stats().Reconnects != 0 {
			t.Errorf("reconnects = %d; want 0 (latency below the heartbeat timeout)", c.Stats().Reconnects)
		}
		eventsIn(t, direct, "events")
	})

	t.Run("blackhole", func(t *testing.T) {
		ld := warm(t, c)
		p.Blackhole()
		hole := time.Now()

		// Nothing tells the client (the proxy passes on no close either);
		// 1.5 heartbeat intervals of silence do.
		poll.Until(t, 10*time.Second, "black hole detected", func() bool { return !c.Ready() })
		detected := time.Since(hole)
		// Let calls meet the lost connection, then heal.
		poll.Until(t, 5*time.Second, "calls refused", func() bool { return ld.failures(hole.Add(detected)) >= 20 })
		p.Pass()
		healed := time.Now()
		poll.Until(t, 15*time.Second, "success after the black hole", func() bool { return ld.successes(healed) >= 20 })
		rs := ld.halt()
		rep := measure(rs, loadDeadline, hole.Add(detected), healed)
		inHole := measure(rs, loadDeadline, hole, healed)
		// Calls made into the black hole, before it was detected, wait for
		// the detection (or their deadline), then fail with the connection.
		var lastIn time.Time
		for _, r := range rs {
			if !r.start.Before(hole) && r.start.Before(hole.Add(detected)) && r.end.After(lastIn) {
				lastIn = r.end
			}
		}
		t.Logf("blackhole: calls made into it before detection had all ended %v after detection", lastIn.Sub(hole.Add(detected)))
		if late := lastIn.Sub(hole.Add(detected)); late > 200*time.Millisecond {
			t.Errorf("blackhole: a call made into it ended %v after detection; want within 200ms", late)
		}
		t.Logf("blackhole: detected %v after it began (heartbeat %v; amqp091-go allows 1.5 intervals); calls in flight when it began had all ended %v after (at detection or their %v deadline)",
			detected, heartbeat, inHole.timeToFail, loadDeadline)
		if limit := heartbeat*3/2 + 500*time.Millisecond; detected > limit {
			t.Errorf("black hole detected after %v; want within 1.5×heartbeat + 500ms = %v", detected, limit)
		}
		checkReport(t, "blackhole", rs, rep, 200*time.Millisecond, 5*time.Second)
		if rep.slowestAfter > 500*time.Millisecond {
			t.Errorf("blackhole: a call made after detection took %v; want refused at once", rep.slowestAfter)
		}
		eventsIn(t, direct, "events")
	})

	t.Run("reset", func(t *testing.T) {
		ld := warm(t, c)
		p.Reset()
		reset := time.Now()
		poll.Until(t, 5*time.Second, "reset seen", func() bool { return !c.Ready() })
		poll.Until(t, 5*time.Second, "calls refused", func() bool { return ld.failures(reset) >= 20 })
		p.Pass()
		healed := time.Now()
		poll.Until(t, 10*time.Second, "success after resets", func() bool { return ld.successes(healed) >= 20 })
		rs := ld.halt()
		rep := measure(rs, loadDeadline, reset, healed)
		checkReport(t, "reset", rs, rep, 200*time.Millisecond, 5*time.Second)
		if rep.slowestAfter > 500*time.Millisecond {
			t.Errorf("reset: a call made while connections were reset took %v; want refused at once", rep.slowestAfter)
		}
		checkEvents(t, "reset", direct, rs)
	})
}

// TestReconnectAcrossURLs: the client tries broker.urls in turn, on the
// first connect and on every reconnect.
func TestReconnectAcrossURLs(t *testing.T) {
	node := rabbitmq.ForTest(t)
	noLeaks(t)
	good := node.NewVHost(t)
	dead := deadURL(t, good)
	p, err := proxy.Start(net.JoinHostPort("127.0.0.1", strconv.Itoa(node.Port())))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	c := startClient(t, amqp.Config{URLs: []string{dead, viaProxy(t, good, p.Addr())}, Channels: 1,
		Backoff: resilience.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}})
	t.Logf("connected through the second URL %v after start", time.Since(start))
	if got := c.Stats().Reconnects; got != 0 {
		t.Errorf("reconnects after the first connect = %d; want 0", got)
	}

	// Lose the connection: the next attempt goes to the dead URL, the one
	// after to the proxy again.
	p.Reset()
	poll.Until(t, 5*time.Second, "connection lost", func() bool { return !c.Ready() })
	p.Pass()
	healed := time.Now()
	waitReady(t, c, 10*time.Second)
	t.Logf("reconnected %v after the proxy passed again; reconnects=%d", time.Since(healed), c.Stats().Reconnects)
	if got := c.Stats().Reconnects; got < 1 {
		t.Errorf("reconnects = %d; want ≥ 1", got)
	}
	if d := time.Since(healed); d > 5*time.Second {
		t.Errorf("reconnected %v after the repair; want within 5s", d)
	}
}

// TestNextURLAtOnce: a URL that refuses, or a connection lost, sends the
// client to the next URL at once; it waits out its backoff only once every
// URL has failed in turn. (A cluster node that died must not cost figway
// a backoff before it tries the nodes that live.)
func TestNextURLAtOnce(t *testing.T) {
	node := rabbitmq.ForTest(t)
	noLeaks(t)
	good := node.NewVHost(t)
	dead := deadURL(t, good)
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(node.Port()))
	var proxies [2]*proxy.Proxy
	for i := range proxies {
		var err error
		if proxies[i], err = proxy.Start(target); err != nil {
			t.Fatal(err)
		}
		defer proxies[i].Close()
	}
	// A backoff far longer than any bound below: waiting it out fails the test.
	const backoff = 10 * time.Second
	start := time.Now()
	c := startClient(t, amqp.Config{
		URLs:     []string{dead, viaProxy(t, good, proxies[0].Addr()), viaProxy(t, good, proxies[1].Addr())},
		Channels: 1, Backoff: resilience.Backoff{Min: backoff, Max: backoff},
	})
	t.Logf("connected through the second URL %v after start", time.Since(start).Round(time.Millisecond))
	if d := time.Since(start); d > backoff/2 {
		t.Errorf("connected %v after start; want the second URL tried at once", d)
	}
	if n := c.Stats().Node; n != proxies[0].Addr() {
		t.Errorf("Stats().Node = %q; want the second URL's %s", n, proxies[0].Addr())
	}

	// Its connection reset and refused: the third URL, at once.
	time.Sleep(1100 * time.Millisecond) // a connection that served a while: not a flapping one
	proxies[0].Reset()
	lost := time.Now()
	poll.Until(t, 5*time.Second, "connection lost", func() bool { return !c.Ready() })
	waitReady(t, c, backoff/2)
	t.Logf("serving through the third URL %v after the second one's connection was reset", time.Since(lost).Round(time.Millisecond))
	if n := c.Stats().Node; n != proxies[1].Addr() {
		t.Errorf("Stats().Node = %q; want the third URL's %s", n, proxies[1].Addr())
	}
}

// deadURL returns rawURL pointed at a loopback port nothing listens on.
func deadURL(t *testing.T, rawURL string) string {
	t.Helper()
	// A port outside the ephemeral range: a dial to a port inside it can
	// (rarely) be given that same port as its local one and connect to
	// itself.
	return viaProxy(t, rawURL, proc.FreeAddr(t))
}

// TestEventRepublishedAfterChannelLoss: an event whose channel dies after
// it was written and before its confirm is published once more on another
// channel, with the same message id, and the caller gets success.
func TestEventRepublishedAfterChannelLoss(t *testing.T) {
	node := rabbitmq.ForTest(t)
	noLeaks(t)
	url := node.NewVHost(t)
	c := amqp.New(amqp.Config{URLs: []string{url}, Channels: 2, Topology: faultTopology,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	// Right after each first publish of an event, publish to a missing
	// exchange on the same channel: the broker closes the channel (404),
	// most often before the persistent event's confirm, which waits for
	// the disk.
	var kill atomic.Bool
	amqp.SetAfterPublish(c, func(ch *amqp091.Channel, event bool) {
		if event && kill.Swap(false) {
			ch.Publish("no-such-exchange", "k", false, false, amqp091.Publishing{})
		}
	})
	runClient(t, c)
	const n = 20
	ids := map[string]bool{}
	for i := range n {
		poll.Until(t, 5*time.Second, "channels reopened", func() bool { return c.Stats().OpenChannels == 2 })
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		ev := request("test.v1.Svc/Place", "e")
		ev.Persistent = true
		kill.Store(true)
		err := c.Publish(ctx, "", "events", ev)
		cancel()
		if err != nil {
			t.Fatalf("Publish %d: %v; want success, published again if its confirm was lost", i, err)
		}
		ids[ev.MessageID] = true
	}
	st := c.Stats()
	t.Logf("%d of %d events confirmed; %d published again", len(ids), n, st.EventsRepublished)
	if st.EventsRepublished == 0 {
		t.Fatalf("no event was published again; want the lost confirms retried")
	}
	in := eventsIn(t, url, "events")
	for id := range ids {
		if in[id] == 0 {
			t.Errorf("confirmed event %s missing from the queue", id)
		}
	}
}
