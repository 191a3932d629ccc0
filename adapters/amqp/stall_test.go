package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/figway/figway/adapters/amqp"
	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// suspendQueue stops the process of the classic queue name on the node
// of url (sys:suspend): the node takes publishes to it and confirms none,
// while the connection, its heartbeats and every other queue live on — a
// node cut off from its cluster, as its quorum queues are, seen from one
// connection. The queue resumes when the returned function is called, or
// when the test ends.
func suspendQueue(t *testing.T, node *rabbitmq.Node, url, name string) (resume func()) {
	t.Helper()
	ch := rabbitmq.Channel(t, url)
	// name, durable, autoDelete, exclusive, noWait, args
	if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	pid := fmt.Sprintf("begin {ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<%q>>, queue, <<%q>>)), amqqueue:get_pid(Q) end", vhostOf(url), name)
	eval := func(op string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := node.Ctl(ctx, "eval", fmt.Sprintf("sys:%s(%s).", op, pid))
		return err
	}
	if err := eval("suspend"); err != nil {
		t.Fatalf("suspend queue %s: %v", name, err)
	}
	var once sync.Once
	resume = func() {
		once.Do(func() {
			if err := eval("resume"); err != nil {
				t.Errorf("resume queue %s: %v", name, err)
			}
		})
	}
	t.Cleanup(resume)
	return resume
}

// TestStalledNodeLeft: when publishes wait on the connection and no
// confirm arrives at all for broker.stall_timeout (the default, 3 s), the
// node is left as stalled: the calls waiting on it fail at once,
// UNAVAILABLE and "channel lost after publishing" (they were published),
// long before their deadline, and figway connects again — here to the same
// node, its only URL — and serves. Without the stall watch the calls
// waited out their 30 s deadline.
func TestStalledNodeLeft(t *testing.T) {
	node := rabbitmq.ForTest(t)
	url := node.NewVHost(t)
	newResponder(t, url, "svc", 1, echo)
	c := startClient(t, clientConfig(url, config.ReplyDirect))
	resume := suspendQueue(t, node, url, "stuck")

	const calls, deadline = 4, 30 * time.Second
	start := time.Now()
	ends := make(chan result, calls)
	for range calls {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			_, err := c.Call(ctx, "", "stuck", request("test.v1.Svc/Get", "stuck"))
			ends <- result{start: start, end: time.Now(), err: err}
		}()
	}
	var slowest time.Duration
	for range calls {
		r := <-ends
		slowest = max(slowest, r.took())
		if !errors.Is(r.err, gateway.ErrUnavailable) || !errors.Is(r.err, gateway.ErrChannelLost) {
			t.Errorf("call to the stalled queue: %v after %v; want UNAVAILABLE, channel lost after publishing", r.err, r.took())
		}
	}
	resume()
	waitReady(t, c, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Call(ctx, "", "svc", request("test.v1.Svc/Get", "after"))
	s := c.Stats()
	t.Logf("the calls to the stalled queue failed within %v (stall_timeout %v); stalls=%d reconnects=%d; a call after: %v",
		slowest.Round(time.Millisecond), amqp.DefaultStallTimeout, s.Stalls, s.Reconnects, err)
	// The watch looks ten times per stall_timeout, and the close waits
	// for the broker at most half a second: 5 s of margin for a loaded
	// machine, far below the deadline.
	if slowest > amqp.DefaultStallTimeout+5*time.Second {
		t.Errorf("the calls to the stalled queue ended within %v; want within %v", slowest, amqp.DefaultStallTimeout+5*time.Second)
	}
	if s.Stalls < 1 || s.Reconnects < 1 {
		t.Errorf("stalls=%d reconnects=%d; want ≥ 1 each", s.Stalls, s.Reconnects)
	}
	if err != nil {
		t.Errorf("a call once figway connected again: %v", err)
	}
}

// TestOneStuckQueueIsNoStall: a queue that confirms nothing while the
// connection's other publishes are confirmed is no stalled node — leaving
// it would not help, and would fail the calls of every other queue — so
// the stuck calls wait out their deadline, and the connection stays.
func TestOneStuckQueueIsNoStall(t *testing.T) {
	node := rabbitmq.ForTest(t)
	url := node.NewVHost(t)
	newResponder(t, url, "svc", 1, echo)
	c := startClient(t, clientConfig(url, config.ReplyDirect))
	suspendQueue(t, node, url, "stuck")

	// Confirms keep coming on the connection: calls to svc, one after the
	// other, until the stuck call has ended.
	load, stop := context.WithCancel(context.Background())
	var served, failed int
	var wg sync.WaitGroup
	wg.Go(func() {
		for load.Err() == nil {
			ctx, cancel := context.WithTimeout(load, 5*time.Second)
			_, err := c.Call(ctx, "", "svc", request("test.v1.Svc/Get", "ok"))
			cancel()
			switch {
			case err == nil:
				served++
			case load.Err() == nil:
				failed++
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	deadline := 2 * amqp.DefaultStallTimeout
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	_, err := c.Call(ctx, "", "stuck", request("test.v1.Svc/Get", "stuck"))
	took := time.Since(start)
	stop()
	wg.Wait()
	s := c.Stats()
	t.Logf("the stuck call ended after %v: %v; meanwhile %d calls to another queue served, %d failed; stalls=%d reconnects=%d",
		took.Round(time.Millisecond), err, served, failed, s.Stalls, s.Reconnects)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the stuck call: %v; want its deadline", err)
	}
	if s.Stalls != 0 || s.Reconnects != 0 || failed != 0 {
		t.Errorf("stalls=%d reconnects=%d, %d calls to another queue failed; want none", s.Stalls, s.Reconnects, failed)
	}
}
