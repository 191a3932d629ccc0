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
