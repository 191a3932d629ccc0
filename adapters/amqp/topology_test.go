package amqp_test

import (
	"context"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/config"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// TestTopologyDeadLetters: a quorum queue of figway's topology with
// delivery_limit and a dead-letter exchange ends a poison message's loop
// by itself: the message comes back unsettled each time its consumer's
// channel closes (the worker died in the handler), and once past the
// limit the queue sends it to the dead-letter exchange — with workers
// that do not count deliveries.
func TestTopologyDeadLetters(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	const limit = 2
	cfg := clientConfig(url, config.ReplyDirect)
	cfg.Topology = config.Topology{
		Exchanges: []config.Exchange{{Name: "work.dlx", Type: "fanout"}},
		Queues: []config.Queue{
			{Name: "work", Type: "quorum", DeliveryLimit: limit, DeadLetterExchange: ptr("work.dlx")},
			{Name: "work.dead", Bind: []config.Binding{{Exchange: "work.dlx"}}},
		},
	}
	startClient(t, cfg)

	ch := rabbitmq.Channel(t, url)
	// exchange, key, mandatory, immediate
	if err := ch.PublishWithContext(context.Background(), "", "work", false, false, amqp091.Publishing{MessageId: "poison", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	var counts []any
	for bounces := 0; ; bounces++ {
		if d, ok := get(t, ch, "work.dead", true); ok {
			t.Logf("dead-lettered after %d deliveries (x-delivery-count %v); x-death %v", bounces, counts, d.Headers["x-death"])
			if d.MessageId != "poison" {
				t.Errorf("dead letter %q; want the poison message", d.MessageId)
			}
			if bounces > limit+1 {
				t.Errorf("dead-lettered after %d deliveries; want at most %d (delivery_limit %d)", bounces, limit+1, limit)
			}
			return
		}
		if bounces > limit+3 {
			t.Fatalf("still not dead-lettered after %d deliveries (x-delivery-count %v)", bounces, counts)
		}
		// A consumer that dies holding the message: its channel closes.
		c := rabbitmq.Channel(t, url)
		if d, ok := get(t, c, "work", false); ok {
			counts = append(counts, d.Headers["x-delivery-count"])
		}
		c.Close()
	}
}

// get takes a message from queue, acked at once with autoAck, waiting up
// to a second for one.
func get(t *testing.T, ch *amqp091.Channel, queue string, autoAck bool) (amqp091.Delivery, bool) {
	t.Helper()
	for end := time.Now().Add(time.Second); ; time.Sleep(20 * time.Millisecond) {
		d, ok, err := ch.Get(queue, autoAck)
		if err != nil {
			t.Fatal(err)
		}
		if ok || time.Now().After(end) {
			return d, ok
		}
	}
}
