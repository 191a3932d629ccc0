package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figway/figway/adapters/amqp"
	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// suspendLane stops the process of one of the channels in confirm mode —
// figway's lanes — of the virtual host of url (sys:suspend, the one of
// lowest number): the node takes its publishes and confirms none, while
// the connection and its other channels live on, as a RabbitMQ 3.10
// channel stuck on the leader of a quorum queue that a partition cut off
// (docs/operations.md, "A partitioned node"). With then set, it also
// stops the process of the classic queue then 0.8 s later, in the
// same rabbitmqctl run: from there on nothing published to it is
// confirmed on any channel. Both resume when the test ends.
func suspendLane(t *testing.T, node *rabbitmq.Node, url, then string) {
	t.Helper()
	eval := func(expr string) string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := node.Ctl(ctx, "eval", expr)
		if err != nil {
			t.Fatalf("eval: %v", err)
		}
		return strings.TrimSpace(out)
	}
	queue := fmt.Sprintf("begin {ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<%q>>, queue, <<%q>>)), amqqueue:get_pid(Q) end", vhostOf(url), then)
	expr := fmt.Sprintf(`Chs = lists:sort([{N, P} || P <- rabbit_channel:list(),
		[{vhost, V}, {confirm, true}, {number, N}] <- [rabbit_channel:info(P, [vhost, confirm, number])],
		V =:= <<%q>>]),
		{_, P} = hd(Chs), sys:suspend(P),`, vhostOf(url))
	if then != "" {
		expr += fmt.Sprintf(" timer:sleep(800), sys:suspend(%s),", queue)
	}
	out := eval(expr + " pid_to_list(P).")
	pid, err := strconv.Unquote(out)
	if err != nil {
		t.Fatalf("suspend a lane's channel: %q", out)
	}
	t.Cleanup(func() {
		if then != "" {
			eval(fmt.Sprintf("sys:resume(%s).", queue))
		}
		// The channel is gone if figway left the node (its connection
		// closed): catch.
		eval(fmt.Sprintf("catch sys:resume(list_to_pid(%q)).", pid))
	})
}

// callEvery calls c (svc, echo) every 20 ms, each call in a goroutine of
// its own with a 30 s deadline, for run or until stop is closed, and
// returns the results once every call has ended.
func callEvery(c *amqp.Client, run time.Duration, stop <-chan struct{}) []result {
	const deadline, every = 30 * time.Second, 20 * time.Millisecond
	start := time.Now()
	var mu sync.Mutex
	var rs []result
	var wg sync.WaitGroup
	for i := 0; time.Since(start) < run && i < int(run/every); i++ {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			r := result{start: time.Now()}
			_, r.err = c.Call(ctx, "", "svc", request("test.v1.Svc/Get", fmt.Sprint(i)))
			r.end = time.Now()
			mu.Lock()
			rs = append(rs, r)
			mu.Unlock()
		})
		select {
		case <-stop:
			run = 0
		case <-time.After(every):
		}
	}
	wg.Wait()
	return rs
}

// TestStuckLaneAbandoned: a lane whose publishes go unconfirmed while
// later publishes to the same queue, on the connection's other lane, are
// confirmed is abandoned as stuck: new calls avoid it at once, and the
// calls waiting on it fail UNAVAILABLE, "channel lost after publishing:
// publish not confirmed", about broker.stall_timeout (3 s) after the
// suspension — not at their 30 s deadline, as they did before — while the
// connection stays and serves on. (A channel that takes publishes and
// confirms none is RabbitMQ 3.10's after a partition; here its process is
// suspended.)
func TestStuckLaneAbandoned(t *testing.T) {
	node, url, c := twoLanes(t)
	suspendLane(t, node, url, "")
	// Confirms keep coming on the connection (the other lane), so that the
	// connection is no stalled node.
	start := time.Now()
	rs := callEvery(c, 4*amqp.DefaultStallTimeout, nil)

	var failed int
	var slowest, lastFail time.Duration
	for _, r := range rs {
		slowest = max(slowest, r.took())
		if r.err == nil {
			continue
		}
		failed++
		lastFail = max(lastFail, r.end.Sub(start))
		if !errors.Is(r.err, gateway.ErrUnavailable) || !errors.Is(r.err, gateway.ErrChannelLost) || !errors.Is(r.err, gateway.ErrNotConfirmed) {
			t.Errorf("a call failed %v after %v; want UNAVAILABLE, channel lost after publishing, not confirmed", r.err, r.took())
		}
	}
	s := c.Stats()
	t.Logf("%d calls, %d failed (the last %v after the suspension); slowest %v; channels stuck %d, renewed %d; stalls %d, reconnects %d",
		len(rs), failed, lastFail.Round(time.Millisecond), slowest.Round(time.Millisecond), s.ChannelsStuck, s.ChannelsRenewed, s.Stalls, s.Reconnects)
	// The lane is seen overtaken within a look or two of the suspension,
	// and abandoned stall_timeout later: 5 s of margin for a loaded
	// machine, far below the deadline.
	if bound := amqp.DefaultStallTimeout + 5*time.Second; slowest > bound {
		t.Errorf("slowest call %v; want within %v (the calls on the stuck lane failed, not at their deadline)", slowest, bound)
	}
	if failed == 0 || s.ChannelsStuck != 1 {
		t.Errorf("%d calls failed, channels stuck %d; want the calls on the stuck lane failed, and 1", failed, s.ChannelsStuck)
	}
	if s.Stalls != 0 || s.Reconnects != 0 {
		t.Errorf("stalls %d, reconnects %d; want the connection kept", s.Stalls, s.Reconnects)
	}
	if err := callSvc(c, "after"); err != nil {
		t.Errorf("a call after: %v", err)
	}
}

// TestCutIsNoStuckLane: when a node stops confirming altogether — a
// partition's cut — just after some lanes' later publishes were confirmed
// while another lane's earlier ones were not, that lane is no stuck
// channel (nothing is confirmed any more): the stall watch leaves the
// node, and no lane is abandoned. (Here one lane's channel is suspended,
// and 0.8 s later the queue.)
func TestCutIsNoStuckLane(t *testing.T) {
	node, url, c := twoLanes(t)

	stop := make(chan struct{})
	var rs []result
	var wg sync.WaitGroup
	wg.Go(func() { rs = callEvery(c, 4*amqp.DefaultStallTimeout, stop) })
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()
	suspendLane(t, node, url, "svc")
	took := poll.Until(t, 2*amqp.DefaultStallTimeout+10*time.Second, "the node left as stalled", func() bool { return c.Stats().Stalls > 0 })
	s := c.Stats()
	halt()
	t.Logf("%d calls; the node left as stalled %v after the queue's suspension; channels stuck %d, renewed %d; stalls %d",
		len(rs), took.Round(time.Millisecond), s.ChannelsStuck, s.ChannelsRenewed, s.Stalls)
	if s.Stalls != 1 || s.ChannelsStuck != 0 {
		t.Errorf("stalls %d, channels stuck %d; want the node left as stalled, and no channel abandoned", s.Stalls, s.ChannelsStuck)
	}
}

// callSvc makes one call to svc, with a 10 s deadline.
func callSvc(c *amqp.Client, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Call(ctx, "", "svc", request("test.v1.Svc/Get", body))
	return err
}

// warmLanes makes calls until each of c's lanes has published to svc and
// twoLanes starts a client with two lanes, both warm, on a virtual host of
// the shared node where an echo responder serves "svc".
func twoLanes(t *testing.T) (node *rabbitmq.Node, url string, c *amqp.Client) {
	node = rabbitmq.ForTest(t)
	url = node.NewVHost(t)
	newResponder(t, url, "svc", 4, echo)
	cfg := clientConfig(url, config.ReplyDirect)
	cfg.Channels = 2
	c = startClient(t, cfg)
	warmLanes(t, c)
	return node, url, c
}

// been confirmed (round robin: twice as many as lanes).
func warmLanes(t *testing.T, c *amqp.Client) {
	t.Helper()
	for i := range 4 {
		if err := callSvc(c, fmt.Sprint("warm", i)); err != nil {
			t.Fatal(err)
		}
	}
}
