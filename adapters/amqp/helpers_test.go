package amqp_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/adapters/amqp"
	"github.com/figway/figway/config"
	"github.com/figway/figway/internal/testing/poll"
)

// startClient runs a Client against url until the test ends, and waits for
// it to be ready.
func startClient(t *testing.T, cfg amqp.Config) *amqp.Client {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.Backoff.Max == 0 {
		cfg.Backoff.Min, cfg.Backoff.Max = 20*time.Millisecond, 200*time.Millisecond
	}
	return runClient(t, amqp.New(cfg))
}

// runClient runs c until the test ends, and waits for it to be ready.
func runClient(t *testing.T, c *amqp.Client) *amqp.Client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitReady(t, c, 10*time.Second)
	return c
}

func waitReady(t *testing.T, c *amqp.Client, within time.Duration) {
	t.Helper()
	poll.Until(t, within, "client ready", c.Ready)
}

// responder plays the worker side by hand: it consumes queue (declared
// non-durable, auto-delete) and answers each request with reply(d). A nil
// reply sends nothing.
type responder struct {
	conn *amqp091.Connection
	mu   sync.Mutex
	got  []amqp091.Delivery
}

func newResponder(t *testing.T, url, queue string, consumers int, reply func(ch *amqp091.Channel, d amqp091.Delivery)) *responder {
	t.Helper()
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatalf("responder dial: %v", err)
	}
	r := &responder{conn: conn}
	var wg sync.WaitGroup
	for i := range consumers {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("responder channel: %v", err)
		}
		if i == 0 {
			// Durable, auto-delete: RabbitMQ 4 deprecates transient
			// queues that are not exclusive.
			if _, err := ch.QueueDeclare(queue, true, true, false, false, nil); err != nil {
				t.Fatalf("declare %s: %v", queue, err)
			}
		}
		ds, err := ch.Consume(queue, "", true, false, false, false, nil)
		if err != nil {
			t.Fatalf("consume %s: %v", queue, err)
		}
		wg.Go(func() {
			for d := range ds {
				r.mu.Lock()
				r.got = append(r.got, d)
				r.mu.Unlock()
				if reply != nil {
					reply(ch, d)
				}
			}
		})
	}
	t.Cleanup(func() { conn.Close(); wg.Wait() })
	return r
}

func (r *responder) deliveries() []amqp091.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]amqp091.Delivery(nil), r.got...)
}

// echo answers with the request's body, prefixed.
func echo(ch *amqp091.Channel, d amqp091.Delivery) {
	ch.Publish("", d.ReplyTo, false, false, amqp091.Publishing{
		CorrelationId: d.CorrelationId,
		ContentType:   d.ContentType,
		Body:          append([]byte("echo:"), d.Body...),
	})
}

func clientConfig(url string, mode config.ReplyMode) amqp.Config {
	return amqp.Config{URLs: []string{url}, Reply: mode, Channels: 2}
}

// testWriter sends the client's logs to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
