package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"

	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
)

// streamMsg is one reply a scripted worker publishes for a stream.
type streamMsg struct {
	seq     int64
	end     bool
	body    string
	headers amqp091.Table
}

// script answers each request with msgs, in the order given.
func script(msgs ...streamMsg) func(ch *amqp091.Channel, d amqp091.Delivery) {
	return func(ch *amqp091.Channel, d amqp091.Delivery) {
		for _, m := range msgs {
			h := amqp091.Table{}
			for k, v := range m.headers {
				h[k] = v
			}
			wire.SetStreamPart(h, m.seq, m.end)
			ch.Publish("", d.ReplyTo, false, false, amqp091.Publishing{
				CorrelationId: d.CorrelationId, ContentType: d.ContentType, Headers: h, Body: []byte(m.body),
			})
		}
	}
}

func msgs(seqs ...int64) []streamMsg {
	var ms []streamMsg
	for _, s := range seqs {
		ms = append(ms, streamMsg{seq: s, body: fmt.Sprint("m", s)})
	}
	return ms
}

// readStream reads s to its end or error, and returns the bodies read; a
// non-OK end is the error.
func readStream(ctx context.Context, s gateway.ReplyStream) (bodies []string, end *gateway.Reply, err error) {
	for {
		rep, last, err := s.Next(ctx)
		if err != nil {
			return bodies, nil, err
		}
		if last {
			return bodies, rep, rep.Status.Err() // nil for OK
		}
		bodies = append(bodies, string(rep.Body))
	}
}

func TestStreamDeliversInOrder(t *testing.T) {
	node := rabbitmq.ForTest(t)
	for _, mode := range []config.ReplyMode{config.ReplyDirect, config.ReplyQueue} {
		t.Run(string(mode), func(t *testing.T) {
			url := node.NewVHost(t)
			// Out of order, with duplicates (of a message read, of one
			// held, of the end) and a message past the end.
			ms := msgs(2, 0, 1, 1, 0)
			ms[0].headers = amqp091.Table{"figway-rmd-x-page": "2"}
			ms = append(ms, streamMsg{seq: 3, body: "m3"}, streamMsg{seq: 4, end: true,
				headers: amqp091.Table{"figway-rmt-x-total": "4"}}, streamMsg{seq: 4, end: true}, streamMsg{seq: 5, body: "m5"})
			newResponder(t, url, "svc", 1, script(ms...))
			c := startClient(t, clientConfig(url, mode))

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := c.Stream(ctx, "", "svc", request("test.v1.Svc/Watch", "w"), gateway.StreamBounds{})
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			defer s.Close()
			bodies, end, err := readStream(ctx, s)
			if err != nil {
				t.Fatalf("read: %v (after %q)", err, bodies)
			}
			if got, want := fmt.Sprint(bodies), "[m0 m1 m2 m3]"; got != want {
				t.Errorf("bodies = %s; want %s", got, want)
			}
			if end.Status != nil || fmt.Sprint(end.Trailer["x-total"]) != "[4]" {
				t.Errorf("end = status %v, trailer %v; want OK with x-total 4", end.Status, end.Trailer)
			}
			// The duplicates of 0 and 1, and at least one of the end's
			// and the message past it (those may come after Close).
			if n := c.Stats().StreamDuplicates; n < 2 {
				t.Errorf("StreamDuplicates = %d; want at least 2", n)
			}
		})
	}
}

func TestStreamFailures(t *testing.T) {
	node := rabbitmq.ForTest(t)
	notFound := streamMsg{seq: 1, end: true, headers: amqp091.Table{"figway-status": int32(codes.NotFound), "figway-message": "no such order"}}
	tests := []struct {
		name     string
		script   []streamMsg
		bounds   gateway.StreamBounds
		timeout  time.Duration
		read     bool // read as messages come; else wait before reading
		wantCode codes.Code
		wantErr  error
		wantRead string
	}{
		{"worker status", append(msgs(0), notFound), gateway.StreamBounds{}, 5 * time.Second, true, codes.NotFound, nil, "[m0]"},
		{"gap at the end", append(msgs(0, 2), streamMsg{seq: 3, end: true}), gateway.StreamBounds{}, 5 * time.Second, true,
			codes.Internal, gateway.ErrStreamGap, "[m0]"},
		{"gap at the deadline", msgs(0, 2), gateway.StreamBounds{}, 700 * time.Millisecond, true,
			codes.Internal, gateway.ErrStreamGap, "[m0]"},
		{"no end: idle bound", msgs(0, 1), gateway.StreamBounds{Idle: 300 * time.Millisecond}, 5 * time.Second, true,
			codes.Unavailable, gateway.ErrStreamBroken, "[m0 m1]"},
		{"no end: deadline", msgs(0, 1), gateway.StreamBounds{}, 700 * time.Millisecond, true,
			codes.Unavailable, gateway.ErrStreamBroken, "[m0 m1]"},
		{"nothing: deadline", nil, gateway.StreamBounds{}, 500 * time.Millisecond, true,
			codes.DeadlineExceeded, context.DeadlineExceeded, "[]"},
		{"slow reader", msgs(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), gateway.StreamBounds{Messages: 10}, 5 * time.Second, false,
			codes.ResourceExhausted, gateway.ErrStreamBuffer, "[]"},
		{"slow reader, bytes", msgs(0, 1, 2, 3, 4, 5), gateway.StreamBounds{Bytes: 10}, 5 * time.Second, false,
			codes.ResourceExhausted, gateway.ErrStreamBuffer, "[]"},
	}
	url := node.NewVHost(t)
	c := startClient(t, clientConfig(url, config.ReplyDirect))
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			queue := fmt.Sprint("svc", i)
			newResponder(t, url, queue, 1, script(tt.script...))
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			start := time.Now()
			s, err := c.Stream(ctx, "", queue, request("test.v1.Svc/Watch", "w"), tt.bounds)
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			defer s.Close()
			if !tt.read {
				time.Sleep(500 * time.Millisecond) // the worker's messages all arrive meanwhile
			}
			bodies, _, err := readStream(ctx, s)
			t.Logf("ended after %v: %v", time.Since(start), err)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v; want %v", err, tt.wantErr)
			}
			if got := gateway.Code(err); got != tt.wantCode {
				t.Errorf("code = %v (%v); want %v", got, err, tt.wantCode)
			}
			if got := fmt.Sprint(bodies); got != tt.wantRead {
				t.Errorf("read %s; want %s", got, tt.wantRead)
			}
		})
	}
	if n := c.Stats().Streams; n != 0 {
		t.Errorf("Streams = %d after every stream closed; want 0", n)
	}
}

// TestOverflowCancelsAtOnce checks that a stream failed by its buffer
// bound tells the worker to stop at once, while its reader has not come
// back yet (an ingress blocked sending to a slow caller), and once only.
func TestOverflowCancelsAtOnce(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	c := startClient(t, clientConfig(url, config.ReplyDirect))
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	const method = "test.v1.Svc/Watch"
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err == nil {
		err = ch.QueueBind(q.Name, method, wire.CancelExchange, false, nil)
	}
	cancels, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	newResponder(t, url, "svc", 1, script(msgs(0, 1, 2, 3, 4, 5)...))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := request(method, "w")
	start := time.Now()
	s, err := c.Stream(ctx, "", "svc", req, gateway.StreamBounds{Messages: 3})
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	select { // nobody reads the stream meanwhile
	case d := <-cancels:
		t.Logf("cancel received %v after the stream began, unread", time.Since(start))
		if d.CorrelationId != req.CorrelationID {
			t.Errorf("cancel for %q; want %q", d.CorrelationId, req.CorrelationID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no cancel within 5s of an overflow")
	}
	if _, _, err := s.Next(ctx); !errors.Is(err, gateway.ErrStreamBuffer) {
		t.Errorf("Next = %v; want ErrStreamBuffer", err)
	}
	s.Close()
	select {
	case d := <-cancels:
		t.Errorf("a second cancel for %q after Close", d.CorrelationId)
	case <-time.After(300 * time.Millisecond):
	}
}
