package amqp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/figway/figway/config"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// bootState puts the node's boot state back to booting's last stage
// (core_started) or on to ready. A RabbitMQ 4 node sits in core_started
// from the moment its AMQP listener opens until its boot is complete, and
// rabbit:is_running() is false there — which is what makes it drop replies
// to direct reply-to. Holding it there makes that window as long as the
// test needs; it is the state every node passes through as it starts.
func bootState(t *testing.T, node *rabbitmq.Node, state string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := node.Ctl(ctx, "eval", "persistent_term:put({rabbit_boot_state, boot_state}, "+state+"), rabbit:is_running().")
	if err != nil {
		t.Fatalf("set boot state %s: %v: %s", state, err, out)
	}
	t.Logf("boot state %s: rabbit:is_running() = %s", state, strings.TrimSpace(out))
}

// TestDirectReplyToWhileNodeBoots connects to a node that has not finished
// booting: on RabbitMQ 4 it drops every reply to direct reply-to, and a
// call that asked for one ran to its deadline although the worker
// answered (the first call after a node started, in about half the runs).
// The client must notice, take its replies through a reply queue, and
// move to direct reply-to once the node delivers there.
func TestDirectReplyToWhileNodeBoots(t *testing.T) {
	node := rabbitmq.Own(t)
	v4 := !strings.HasPrefix(node.ServerVersion(), "3.")
	url := node.URL()
	r := newResponder(t, url, "svc", 1, echo)
	bootState(t, node, "core_started")
	t.Cleanup(func() { bootState(t, node, "ready") })
	c := startClient(t, clientConfig(url, config.ReplyDirect))

	call := func(what string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		rep, err := c.Call(ctx, "", "svc", request("test.v1.Svc/Get", what))
		if err != nil {
			t.Fatalf("%s: Call: %v", what, err)
		}
		if got, want := string(rep.Body), "echo:"+what; got != want {
			t.Fatalf("%s: reply %q; want %q", what, got, want)
		}
		ds := r.deliveries()
		replyTo := ds[len(ds)-1].ReplyTo
		t.Logf("%s: answered in %v, reply_to %s", what, time.Since(start).Round(time.Millisecond), replyTo)
		return replyTo
	}

	// RabbitMQ 3.10 delivers direct replies while booting: nothing to
	// work around there, and the client sees that at once.
	if got := c.Stats().DirectReplyTo; got == v4 {
		t.Errorf("while booting: Stats().DirectReplyTo = %v; want %v", got, !v4)
	}
	for i := range 3 {
		replyTo := call("booting-" + string(rune('a'+i)))
		if v4 && !strings.HasPrefix(replyTo, "amq.gen-") {
			t.Errorf("while booting, reply_to = %q; want the connection's reply queue", replyTo)
		}
	}

	bootState(t, node, "ready")
	poll.Until(t, 10*time.Second, "client to take direct reply-to once the node is booted", func() bool {
		return c.Stats().DirectReplyTo
	})
	replyTo := call("booted")
	if !strings.HasPrefix(replyTo, "amq.rabbitmq.reply-to.") {
		t.Errorf("once booted, reply_to = %q; want a direct reply-to address", replyTo)
	}
	if got := c.Stats().UnmatchedReplies; got != 0 {
		t.Errorf("unmatched replies = %d; want 0", got)
	}
}
