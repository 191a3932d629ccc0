package amqp_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// TestRenewNackedChannel: a lane whose publishes to one queue meet nothing
// but nacks for 250 ms is renewed — a fresh channel takes new calls — and
// the old channel stays open for the call still waiting on it, whose
// reply comes back there, and is closed once that call has ended. (On
// RabbitMQ 3.10 a channel that first published to a quorum queue while
// its leader's node was dying keeps being nacked after the election; here
// a queue at its length limit with reject-publish stands in for it.)
func TestRenewNackedChannel(t *testing.T) {
	node := rabbitmq.ForTest(t)
	url := node.NewVHost(t)
	ch := rabbitmq.Channel(t, url)
	// name, durable, autoDelete, exclusive, noWait, args
	if _, err := ch.QueueDeclare("full", true, false, false, false, amqp091.Table{
		"x-max-length": int64(0), "x-overflow": "reject-publish",
	}); err != nil {
		t.Fatal(err)
	}
	newResponder(t, url, "slow", 1, func(ch *amqp091.Channel, d amqp091.Delivery) {
		time.Sleep(8 * time.Second) // outlasts a rabbitmqctl run on a loaded machine
		echo(ch, d)
	})
	cfg := clientConfig(url, config.ReplyDirect)
	cfg.Channels = 1
	c := startClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The channels of the test's virtual host, counted live (a
	// connection's channel count in list_connections is a statistic,
	// refreshed every few seconds). figway's are the only ones that change.
	channels := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a rabbitmqctl run of its own
		defer cancel()
		out, err := node.Ctl(ctx, "-q", "--no-table-headers", "list_channels", "vhost", "name")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, line := range strings.Split(out, "\n") {
			if v, _, ok := strings.Cut(line, "\t"); ok && v == vhostOf(url) {
				n++
			}
		}
		return n
	}
	before := channels()

	slow := make(chan error, 1)
	go func() {
		rep, err := c.Call(ctx, "", "slow", request("test.v1.Svc/Get", "x"))
		if err == nil && string(rep.Body) != "echo:x" {
			err = errors.New("reply " + string(rep.Body))
		}
		slow <- err
	}()
	time.Sleep(200 * time.Millisecond) // the slow call is on the lane
	nacked := 0
	for start := time.Now(); c.Stats().ChannelsRenewed == 0 && time.Since(start) < 5*time.Second; {
		if err := c.Publish(ctx, "", "full", request("test.v1.Svc/Place", "x")); !errors.Is(err, gateway.ErrNacked) {
			t.Fatalf("Publish to a full queue = %v; want nacked", err)
		}
		nacked++
		time.Sleep(10 * time.Millisecond)
	}
	renewed := c.Stats().ChannelsRenewed
	t.Logf("%d publishes nacked; channels renewed: %d", nacked, renewed)
	if renewed == 0 {
		t.Fatal("no channel renewed after 5 s of nacks")
	}
	during := channels()
	if err := <-slow; err != nil {
		t.Errorf("the call waiting on the renewed channel: %v; want its reply", err)
	}
	// A new call goes out on the new channel.
	if _, err := c.Call(ctx, "", "slow", request("test.v1.Svc/Get", "x")); err != nil {
		t.Errorf("call on the new channel: %v", err)
	}
	poll.Until(t, 10*time.Second, "the renewed channel closed", func() bool { return channels() == before })
	t.Logf("channels in the virtual host: %d before, %d while the old one drained, %d after", before, during, before)
	if during <= before {
		t.Errorf("%d channels while the renewed one had a call on it; want more than %d", during, before)
	}
}

// vhostOf returns the virtual host of an AMQP URL.
func vhostOf(u string) string {
	i := strings.LastIndex(u, "/")
	v := u[i+1:]
	if v == "" {
		return "/"
	}
	return strings.ReplaceAll(v, "%2F", "/")
}
