package fault

import (
	"context"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/wire"
)

// GoneReplyTo returns a direct reply-to address in the form RabbitMQ
// gives, whose channel the broker cannot find, as when the node of the
// caller that sent a request has died: a real address, read off a probe
// message published through url, with its node part changed. RabbitMQ
// 3.10 closes the connection of a worker that replies to it
// (docs/wire-protocol.md, "A reply to a dead node's channel").
func GoneReplyTo(t testing.TB, url string) string {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("GoneReplyTo: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("GoneReplyTo: %v", err)
	}
	if _, err := ch.Consume(wire.DirectReplyTo, "", true, false, false, false, nil); err != nil {
		t.Fatalf("GoneReplyTo: %v", err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatalf("GoneReplyTo: %v", err)
	}
	probe := amqp.Publishing{ReplyTo: wire.DirectReplyTo, Body: []byte("probe")}
	if err := ch.PublishWithContext(context.Background(), "", q.Name, false, false, probe); err != nil {
		t.Fatalf("GoneReplyTo: %v", err)
	}
	var addr string
	poll.Until(t, 10*time.Second, "the probe message", func() bool {
		d, ok, err := ch.Get(q.Name, true)
		if err != nil {
			t.Fatalf("GoneReplyTo: %v", err)
		}
		addr = d.ReplyTo
		return ok
	})
	pid, ok := strings.CutPrefix(addr, wire.DirectReplyTo+".")
	if !ok || len(pid) < 8 {
		t.Fatalf("GoneReplyTo: reply-to %q is not a direct reply-to address", addr)
	}
	return wire.DirectReplyTo + ".AAAAAAAA" + pid[8:]
}
