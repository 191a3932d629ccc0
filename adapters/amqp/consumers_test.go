package amqp_test

import (
	"context"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/config"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// TestConsumerCounts: the client counts the consumers of the queues it
// watches — a consumer coming and going is seen within a second or two; a
// queue that does not exist is unknown, not idle, and looking for it
// disturbs nothing; a queue no longer watched is no longer known.
func TestConsumerCounts(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	cfg := clientConfig(url, config.ReplyDirect)
	cfg.Topology = config.Topology{Queues: []config.Queue{{Name: "work"}, {Name: "idle"}}}
	c := startClient(t, cfg)
	c.WatchQueues([]string{"work", "idle", "absent"})
	count := func(q string) int {
		if n, known := c.Consumers(q); known {
			return n
		}
		return -1
	}
	poll.Until(t, 5*time.Second, "work and idle counted", func() bool { return count("work") == 0 && count("idle") == 0 })

	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// queue, consumer, autoAck, exclusive, noLocal, noWait, args
	if _, err := ch.Consume("work", "w1", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// Recount looks again at once: a call refused for want of a consumer
	// does not miss a worker that has just attached.
	came := time.Now()
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	c.Recount(rctx)
	rcancel()
	seen := time.Since(came)
	if n := count("work"); n != 1 {
		t.Fatalf("after Recount: %d consumers of work; want 1", n)
	}
	if err := ch.Cancel("w1", false); err != nil {
		t.Fatal(err)
	}
	went := time.Now()
	poll.Until(t, 5*time.Second, "consumer gone", func() bool { return count("work") == 0 })
	gone := time.Since(went)
	t.Logf("a consumer was seen %v after it came (Recount) and %v after it went (ConsumerCheck 500ms)", seen, gone)
	if seen > 2*time.Second || gone > 2*time.Second {
		t.Errorf("consumer changes seen after %v and %v; want within 2s", seen, gone)
	}

	if n, known := c.Consumers("absent"); known {
		t.Errorf("Consumers(absent) = %d, known; want unknown: the queue does not exist", n)
	}
	// Looking for it closes a channel of its own every time, never a lane.
	time.Sleep(time.Second)
	if st := c.Stats(); st.OpenChannels != cfg.Channels || !c.Ready() {
		t.Errorf("after looking for a missing queue: %d open channels, ready %v; want %d, ready", st.OpenChannels, c.Ready(), cfg.Channels)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Publish(ctx, "", "idle", request("test.v1.Svc/Place", "e")); err != nil {
		t.Errorf("Publish after looking for a missing queue: %v", err)
	}

	c.WatchQueues([]string{"work"})
	if _, known := c.Consumers("idle"); known {
		t.Error("a queue no longer watched is still known")
	}

	// Another connection's exclusive queue refuses the look
	// (RESOURCE_LOCKED): it is unknown, and the watch goes on counting the
	// others.
	// name, durable, autoDelete, exclusive, noWait, args
	if _, err := ch.QueueDeclare("theirs", false, true, true, false, nil); err != nil {
		t.Fatal(err)
	}
	c.WatchQueues([]string{"theirs", "work"})
	rctx, rcancel = context.WithTimeout(context.Background(), 5*time.Second)
	c.Recount(rctx)
	rcancel()
	if n, known := c.Consumers("theirs"); known {
		t.Errorf("Consumers(theirs) = %d, known; want unknown: the queue is another connection's", n)
	}
	if _, err := ch.Consume("work", "w2", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "a consumer seen after a locked queue", func() bool { return count("work") == 1 })
}

// TestConsumerWatchHasItsOwnConnection: the consumer counts come from a
// connection of the client's own, apart from the one serving calls. A
// passive declare that the broker answers with a connection error — on
// RabbitMQ 3.10, a quorum queue electing its leader is answered 541
// INTERNAL_ERROR — ends that connection only: here an operator closes
// it. Calls go on on the serving connection, the counts are unknown for
// a moment (no call is refused for them), and known again once the watch
// has dialled again.
func TestConsumerWatchHasItsOwnConnection(t *testing.T) {
	node := rabbitmq.ForTest(t)
	url := node.NewVHost(t)
	cfg := clientConfig(url, config.ReplyDirect)
	cfg.Name = "figway-watch-test"
	cfg.Topology = config.Topology{Queues: []config.Queue{{Name: "work"}}}
	c := startClient(t, cfg)
	c.WatchQueues([]string{"work"})
	poll.Until(t, 5*time.Second, "work counted", func() bool { _, known := c.Consumers("work"); return known })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := cfg.Name + " (consumers)"
	before, err := node.ConnectionPIDs(ctx, name)
	if err != nil || len(before) != 1 {
		t.Fatalf("connections named %q: %v, %v; want one", name, before, err)
	}
	if _, err := node.CloseConnection(ctx, name, "test"); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	poll.Until(t, 10*time.Second, "the watch connected again", func() bool {
		pids, err := node.ConnectionPIDs(ctx, name)
		return err == nil && len(pids) == 1 && pids[0] != before[0]
	})
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	c.Recount(rctx)
	timedOut := rctx.Err() != nil
	rcancel()
	if timedOut {
		t.Fatal("no round of looks ended within 10s of the watch's connection closing: it did not dial again")
	}
	if _, known := c.Consumers("work"); !known {
		t.Error("work's consumers unknown after a round of looks on the new connection")
	}
	t.Logf("counts known again %v after the watch's connection was closed", time.Since(at).Round(time.Millisecond))
	if st := c.Stats(); st.Reconnects != 0 || !c.Ready() {
		t.Errorf("after the watch's connection closed: %d reconnects, ready %v; want the serving connection untouched", st.Reconnects, c.Ready())
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer pcancel()
	if err := c.Publish(pctx, "", "work", request("test.v1.Svc/Place", "e")); err != nil {
		t.Errorf("Publish after the watch's connection closed: %v", err)
	}
}
