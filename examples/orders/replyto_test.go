package orders_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/fault"
	figwaytest "github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// replyToGoneDropped: a request whose direct reply-to address names a
// channel the broker cannot find, as when the node of the figway that sent
// it died, makes RabbitMQ 3.10 close the connection of the worker that
// replies to it, and the request comes back (docs/wire-protocol.md, "A
// reply to a dead node's channel"). The worker, whose standard error is
// log, replies to the redelivered request alone, learns that the address
// is gone, and acks the request without a reply when it comes again,
// instead of crashing on it until it expires; it goes on serving figway.
func replyToGoneDropped(t *testing.T, amqpURL, encoding, grpcAddr string, log *proc.SyncBuffer) {
	// Each connection the worker opens logs "connected: consuming ...".
	connects := func() int { return strings.Count(log.String(), "connected: consuming") }
	dropped := func() int { return strings.Count(log.String(), "reply dropped") }
	before := connects()

	// The deadline outlasts the wait below: a worker that does not drop the
	// reply crashes on the request until the test gives up.
	p := getOrder(encoding, fault.GoneReplyTo(t, amqpURL), time.Now().Add(time.Minute))
	if err := rabbitmq.Channel(t, amqpURL).PublishWithContext(context.Background(), "", "orders.requests", false, false, p); err != nil {
		t.Fatal(err)
	}
	took := poll.Until(t, 20*time.Second, "the worker's log line of the dropped reply", func() bool { return dropped() == 1 })
	if !strings.Contains(log.String(), p.CorrelationId) {
		t.Errorf("the worker's log does not name the dropped request's correlation id %s", p.CorrelationId)
	}

	// The worker goes on serving, through figway.
	gc := figwaytest.Dial(t, grpcAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := ordersv1.NewOrderServiceClient(gc).GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"}); err != nil {
		t.Fatalf("GetOrder(o-1) after the drop: %v", err)
	}

	// One crash on the first delivery, one on the reply sent alone; then
	// the request is acked without its reply: no further crash on it.
	n := connects() - before
	t.Logf("the reply was dropped %v after the request was published; the worker connected %d more times", took.Round(time.Millisecond), n)
	if n > 2 {
		t.Errorf("the worker connected %d more times; want at most 2", n)
	}
	time.Sleep(500 * time.Millisecond)
	if again, d := connects()-before, dropped(); again != n || d != 1 {
		t.Errorf("after the drop: %d more connects, %d drops; want %d and 1", again, d, n)
	}
	// The broker holds the request no more, neither ready nor unacked.
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	out, err := rabbitmq.ForTest(t).Ctl(ctx, "list_queues", "-p", strings.TrimPrefix(u.Path, "/"),
		"--no-table-headers", "--silent", "name", "messages_ready", "messages_unacknowledged")
	if err != nil {
		t.Fatal(err)
	}
	held := ""
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "orders.requests" {
			held = f[1] + " ready, " + f[2] + " unacked"
		}
	}
	if held != "0 ready, 0 unacked" {
		t.Errorf("orders.requests holds %q (list_queues: %q); want 0 ready, 0 unacked", held, out)
	}
}
