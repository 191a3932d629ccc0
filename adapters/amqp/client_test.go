package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/adapters/amqp"
	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
)

func request(method string, body string) *wire.Request {
	return &wire.Request{
		Method:      method,
		Body:        []byte(body),
		ContentType: wire.ContentTypeProtobuf,
		MessageID:   wire.NewID(),
		Source:      "figway://test",
	}
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestCallRoundTrip(t *testing.T) {
	node := rabbitmq.ForTest(t)
	for _, mode := range []config.ReplyMode{config.ReplyDirect, config.ReplyQueue} {
		t.Run(string(mode), func(t *testing.T) {
			url := node.NewVHost(t)
			r := newResponder(t, url, "svc", 1, echo)
			c := startClient(t, clientConfig(url, mode))

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			deadline, _ := ctx.Deadline()
			req := request("test.v1.Svc/Get", "hello")
			req.Deadline = deadline
			req.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
			req.Metadata = map[string][]string{"x-tenant-id": {"t1"}}
			// rpc requests carry the cloudEvents:* headers only when the
			// route asks (wire: {cloudevents: always}): one mode each.
			req.CloudEvents = mode == config.ReplyQueue
			rep, err := c.Call(ctx, "", "svc", req)
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			if got, want := string(rep.Body), "echo:hello"; got != want {
				t.Errorf("reply body = %q; want %q", got, want)
			}
			if rep.Status != nil {
				t.Errorf("reply status = %v; want OK", rep.Status)
			}

			d := r.deliveries()[0]
			if !hex32.MatchString(d.CorrelationId) {
				t.Errorf("correlation_id = %q; want 32 lowercase hex", d.CorrelationId)
			}
			if mode == config.ReplyDirect && !regexp.MustCompile(`^amq\.rabbitmq\.reply-to\.`).MatchString(d.ReplyTo) {
				t.Errorf("reply_to = %q; want a direct reply-to address", d.ReplyTo)
			}
			if mode == config.ReplyQueue && !regexp.MustCompile(`^amq\.gen-`).MatchString(d.ReplyTo) {
				t.Errorf("reply_to = %q; want the instance's server-named queue", d.ReplyTo)
			}
			checks := []struct {
				name      string
				got, want any
			}{
				{"content_type", d.ContentType, wire.ContentTypeProtobuf},
				{"type", d.Type, "test.v1.Svc/Get"},
				{"app_id", d.AppId, "figway"},
				{"delivery_mode", d.DeliveryMode, uint8(1)},
				{"message_id", d.MessageId, req.MessageID},
				{"figway-deadline", d.Headers["figway-deadline"], deadline.UTC().Format("2006-01-02T15:04:05.000000000Z")},
				{"traceparent", d.Headers["traceparent"], req.Traceparent},
				{"figway-md-x-tenant-id", d.Headers["figway-md-x-tenant-id"], "t1"},
			}
			n := 3 // figway-deadline, traceparent, figway-md-x-tenant-id
			if req.CloudEvents {
				n += 5
				checks = append(checks, []struct {
					name      string
					got, want any
				}{
					{"cloudEvents:specversion", d.Headers["cloudEvents:specversion"], "1.0"},
					{"cloudEvents:id", d.Headers["cloudEvents:id"], req.MessageID},
					{"cloudEvents:type", d.Headers["cloudEvents:type"], "test.v1.Svc/Get"},
					{"cloudEvents:source", d.Headers["cloudEvents:source"], "figway://test"},
				}...)
				if ce, _ := d.Headers["cloudEvents:time"].(string); len(ce) != 30 {
					t.Errorf("cloudEvents:time = %q; want RFC 3339 with 9 fraction digits", ce)
				}
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
				}
			}
			// docs/wire-protocol.md: every request header is a long
			// string (field type S), which amqp091-go decodes as string.
			if len(d.Headers) != n {
				t.Errorf("headers = %v; want %d of them", d.Headers, n)
			}
			for k, v := range d.Headers {
				if _, ok := v.(string); !ok {
					t.Errorf("header %s has type %T; want a long string", k, v)
				}
			}
			ms, err := strconv.Atoi(d.Expiration)
			if err != nil || ms <= 0 || ms > 3000 {
				t.Errorf("expiration = %q; want remaining ms in (0, 3000]", d.Expiration)
			}
			if d.Timestamp.IsZero() {
				t.Error("timestamp not set")
			}
			if got := c.Stats().Pending; got != 0 {
				t.Errorf("pending after call = %d; want 0", got)
			}
		})
	}
}

func TestReplyStatus(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	newResponder(t, url, "svc", 1, func(ch *amqp091.Channel, d amqp091.Delivery) {
		ch.Publish("", d.ReplyTo, false, false, amqp091.Publishing{
			CorrelationId: d.CorrelationId,
			Headers:       amqp091.Table{"figway-status": int32(5), "figway-message": "order o-9 not found"},
		})
	})
	c := startClient(t, clientConfig(url, config.ReplyDirect))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rep, err := c.Call(ctx, "", "svc", request("test.v1.Svc/Get", "x"))
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if rep.Status == nil || rep.Status.Code() != 5 || rep.Status.Message() != "order o-9 not found" {
		t.Errorf("reply status = %v; want NOT_FOUND 'order o-9 not found'", rep.Status)
	}
}

func TestUnroutableFailsFast(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	c := startClient(t, clientConfig(url, config.ReplyDirect))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	start := time.Now()
	_, err := c.Call(ctx, "", "no-such-queue", request("test.v1.Svc/Get", "x"))
	if !errors.Is(err, gateway.ErrUnroutable) || !errors.Is(err, gateway.ErrUnavailable) {
		t.Fatalf("Call to unbound key: err = %v; want ErrUnroutable and ErrUnavailable", err)
	}
	rpcTook := time.Since(start)

	start = time.Now()
	ev := request("test.v1.Svc/Place", "x")
	ev.Persistent = true
	err = c.Publish(ctx, "", "no-such-queue", ev)
	if !errors.Is(err, gateway.ErrUnroutable) {
		t.Fatalf("Publish to unbound key: err = %v; want ErrUnroutable", err)
	}
	eventTook := time.Since(start)
	t.Logf("unroutable rpc failed in %v, event in %v (deadline 10s)", rpcTook, eventTook)
	if rpcTook > time.Second || eventTook > time.Second {
		t.Errorf("unroutable took rpc %v, event %v; want well before the 10s deadline", rpcTook, eventTook)
	}
}

func TestPublishEventConfirmed(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	if _, err := ch.QueueDeclare("events", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	c := startClient(t, clientConfig(url, config.ReplyDirect))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			ev := request("test.v1.Svc/Place", fmt.Sprint(i))
			ev.Persistent = true
			errs <- c.Publish(ctx, "", "events", ev)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	q, err := ch.QueueDeclarePassive("events", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != n {
		t.Errorf("queue holds %d messages; want %d confirmed events", q.Messages, n)
	}
	d, ok, err := ch.Get("events", true)
	if err != nil || !ok {
		t.Fatalf("Get: ok=%v err=%v", ok, err)
	}
	if d.DeliveryMode != 2 || d.CorrelationId != "" || d.ReplyTo != "" || d.Expiration != "" {
		t.Errorf("event delivery_mode=%d correlation_id=%q reply_to=%q expiration=%q; want 2 and no rpc fields",
			d.DeliveryMode, d.CorrelationId, d.ReplyTo, d.Expiration)
	}
}

func TestNackFailsFast(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	// A full queue with overflow reject-publish makes the broker nack.
	if _, err := ch.QueueDeclare("full", true, false, false, false, amqp091.Table{
		"x-max-length": int64(0), "x-overflow": "reject-publish",
	}); err != nil {
		t.Fatal(err)
	}
	c := startClient(t, clientConfig(url, config.ReplyDirect))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := c.Call(ctx, "", "full", request("test.v1.Svc/Get", "x")); !errors.Is(err, gateway.ErrNacked) {
		t.Errorf("Call to a rejecting queue: err = %v; want ErrNacked", err)
	}
	if err := c.Publish(ctx, "", "full", request("test.v1.Svc/Place", "x")); !errors.Is(err, gateway.ErrNacked) {
		t.Errorf("Publish to a rejecting queue: err = %v; want ErrNacked", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("nacks took %v; want well before the 10s deadline", took)
	}
}

func TestDeadlineLeavesNothingBehind(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	newResponder(t, url, "silent", 1, nil)
	c := startClient(t, clientConfig(url, config.ReplyDirect))
	const timeout = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	_, err := c.Call(ctx, "", "silent", request("test.v1.Svc/Get", "x"))
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call to a silent worker: err = %v; want DeadlineExceeded", err)
	}
	if took > timeout+200*time.Millisecond {
		t.Errorf("Call returned after %v; want within deadline + 200ms", took)
	}
	if got := c.Stats().Pending; got != 0 {
		t.Errorf("pending after deadline = %d; want 0", got)
	}
}

func TestForgedAndDuplicateRepliesDropped(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	newResponder(t, url, "svc", 1, func(ch *amqp091.Channel, d amqp091.Delivery) {
		// A forged reply with a random correlation id, then the real one
		// twice.
		ch.Publish("", d.ReplyTo, false, false, amqp091.Publishing{CorrelationId: wire.NewID(), Body: []byte("forged")})
		echo(ch, d)
		echo(ch, d)
	})
	c := startClient(t, clientConfig(url, config.ReplyDirect))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rep, err := c.Call(ctx, "", "svc", request("test.v1.Svc/Get", "real"))
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if string(rep.Body) != "echo:real" {
		t.Errorf("reply = %q; want echo:real", rep.Body)
	}
	poll.Until(t, 10*time.Second, "two unmatched replies counted", func() bool { return c.Stats().UnmatchedReplies >= 2 })
	if got := c.Stats().UnmatchedReplies; got != 2 {
		t.Errorf("unmatched replies = %d; want 2 (one forged, one duplicate)", got)
	}
}

func TestConcurrentCallsNoCrossTalk(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	newResponder(t, url, "svc", 4, echo)
	c := startClient(t, amqp.Config{URLs: []string{url}, Channels: 4})
	const n = 1000
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf("call-%d", i)
			rep, err := c.Call(ctx, "", "svc", request("test.v1.Svc/Get", body))
			if err == nil && string(rep.Body) == "echo:"+body {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", body, err))
			} else {
				bad = append(bad, fmt.Sprintf("%s: got %q", body, rep.Body))
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d of %d calls wrong, e.g. %v", len(bad), n, bad[0])
	}
	if got := c.Stats().UnmatchedReplies; got != 0 {
		t.Errorf("unmatched replies = %d; want 0", got)
	}
}

func TestChannelErrorFailsCallAndLaneRecovers(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	newResponder(t, url, "svc", 1, echo)
	c := startClient(t, amqp.Config{URLs: []string{url}, Channels: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	// Publishing to a missing exchange closes the channel (404).
	_, err := c.Call(ctx, "no-such-exchange", "k", request("test.v1.Svc/Get", "x"))
	if !errors.Is(err, gateway.ErrUnavailable) {
		t.Fatalf("Call to a missing exchange: err = %v; want ErrUnavailable", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("failed after %v; want at once", took)
	}
	// The lane is reopened; the next call succeeds.
	var rep *gateway.Reply
	for time.Now().Before(start.Add(3 * time.Second)) {
		if rep, err = c.Call(ctx, "", "svc", request("test.v1.Svc/Get", "again")); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || string(rep.Body) != "echo:again" {
		t.Fatalf("Call after channel error: %v, %v; want echo:again", rep, err)
	}
}

// connectionClosedFailsWaitingCalls runs in TestBrokerFaults, on its node.
func connectionClosedFailsWaitingCalls(t *testing.T, node *rabbitmq.Node) {
	url := node.URL()
	var answer sync.Map // bodies the responder answers
	newResponder(t, url, "svc", 1, func(ch *amqp091.Channel, d amqp091.Delivery) {
		if _, ok := answer.Load(string(d.Body)); ok {
			echo(ch, d)
		}
	})
	c := startClient(t, clientConfig(url, config.ReplyDirect))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	const waiting = 20
	errs := make(chan error, waiting)
	for range waiting {
		go func() {
			_, err := c.Call(ctx, "", "svc", request("test.v1.Svc/Get", "never answered"))
			errs <- err
		}()
	}
	poll.Until(t, 10*time.Second, fmt.Sprintf("%d calls pending", waiting), func() bool { return c.Stats().Pending >= waiting })
	ctlStart := time.Now()
	if err := node.CloseAllConnections(ctx); err != nil {
		t.Fatal(err)
	}
	closed := time.Now() // the broker has closed the connections by now
	var slowest time.Duration
	for range waiting {
		err := <-errs
		// Published, then lost: a retry is safe only if the method is
		// idempotent.
		if !errors.Is(err, gateway.ErrUnavailable) || !errors.Is(err, gateway.ErrChannelLost) {
			t.Errorf("waiting call: err = %v; want ErrUnavailable and ErrChannelLost", err)
		}
		slowest = time.Since(closed)
	}
	t.Logf("%d waiting calls failed %v after rabbitmqctl close_all_connections returned (%v after it started)",
		waiting, slowest, time.Since(ctlStart))
	if slowest > time.Second {
		t.Errorf("waiting calls failed %v after the connections were closed; want within 1s", slowest)
	}

	// close_all_connections closed the responder's connection too.
	newResponder(t, url, "svc", 1, func(ch *amqp091.Channel, d amqp091.Delivery) {
		if _, ok := answer.Load(string(d.Body)); ok {
			echo(ch, d)
		}
	})
	answer.Store("after", true)
	err := errors.New("no call made")
	var rep *gateway.Reply
	for time.Since(closed) < 8*time.Second {
		if rep, err = c.Call(ctx, "", "svc", request("test.v1.Svc/Get", "after")); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || string(rep.Body) != "echo:after" {
		t.Fatalf("Call after reconnect: %v; want echo:after", err)
	}
	t.Logf("success again %v after close_all_connections; reconnects=%d", time.Since(closed), c.Stats().Reconnects)
	if c.Stats().Reconnects < 1 {
		t.Errorf("reconnects = %d; want ≥ 1", c.Stats().Reconnects)
	}
}

// blockedConnectionRefusesCalls runs in TestBrokerFaults, on its node.
func blockedConnectionRefusesCalls(t *testing.T, node *rabbitmq.Node) {
	c := startClient(t, clientConfig(node.URL(), config.ReplyDirect))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := node.SetMemoryHighWatermark(ctx, 0.000001); err != nil {
		t.Fatal(err)
	}
	// The broker blocks a connection when it next publishes; that publish
	// fails as soon as connection.blocked arrives, not at its deadline.
	for c.Ready() && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		err := c.Publish(pctx, "", "nowhere", request("test.v1.Svc/Place", "x"))
		took := time.Since(start)
		cancel()
		if c.Stats().Blocked {
			t.Logf("publish that met the alarm failed after %v: %v", took, err)
			if !errors.Is(err, gateway.ErrUnavailable) || took > time.Second {
				t.Errorf("publish that met the alarm: %v after %v; want UNAVAILABLE at the block, not at its 5s deadline", err, took)
			}
		}
	}
	start := time.Now()
	_, err := c.Call(ctx, "", "svc", request("test.v1.Svc/Get", "x"))
	if !errors.Is(err, gateway.ErrUnavailable) {
		t.Errorf("Call while blocked: err = %v; want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Call while blocked took %v; want refused at once, well before its 20s deadline", took)
	}
	if err := node.SetMemoryHighWatermark(ctx, 0.4); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c, 10*time.Second)
}
