package amqp_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
)

// padTo returns p with a "pad" header added to h so that
// amqpwire.HeaderFrameSize(p) is exactly size.
func padTo(t *testing.T, p amqp091.Publishing, h amqp091.Table, size int) amqp091.Publishing {
	t.Helper()
	p.Headers = amqp091.Table{"pad": ""}
	for k, v := range h {
		p.Headers[k] = v
	}
	n, err := amqpwire.HeaderFrameSize(&p)
	if err != nil {
		t.Fatal(err)
	}
	p.Headers["pad"] = strings.Repeat("p", size-n)
	if n, _ := amqpwire.HeaderFrameSize(&p); n != size {
		t.Fatalf("padded header frame is %d bytes; want %d", n, size)
	}
	return p
}

// TestHeaderFrameSizeMatchesBroker checks amqpwire.HeaderFrameSize against the
// broker at the exact boundary: a content header of frame_max bytes is
// taken, one of frame_max+1 closes the connection with FRAME_ERROR. It is
// the fact figway's bound on headers rests on.
func TestHeaderFrameSizeMatchesBroker(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	base := amqp091.Publishing{
		ContentType: wire.ContentTypeProtobuf, CorrelationId: wire.NewID(), ReplyTo: "r", MessageId: wire.NewID(),
		Type: "a.B/C", AppId: "figway", DeliveryMode: 1, Expiration: "5000", Timestamp: time.Now(), Body: []byte("x"),
	}
	// AMQP 0-9-1 bounds a whole frame, envelope included, by frame_max,
	// and so does FitsFrame; RabbitMQ tolerates 8 bytes more
	// (FRAME_SIZE_FUDGE in rabbit_reader) and closes the connection past
	// that. Both edges are checked, which pins HeaderFrameSize to the byte.
	for _, tc := range []struct {
		name   string
		over   int
		fits   bool
		closes bool
	}{
		{"exactly frame_max", 0, true, false},
		{"one byte more, within the broker's tolerance", 1, false, false},
		{"the broker's tolerance", 8, false, false},
		{"one byte past the broker's tolerance", 9, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := amqp091.Dial(url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			frameMax := conn.Config.FrameSize
			if frameMax != amqpwire.DefaultFrameMax {
				t.Fatalf("negotiated frame_max = %d; want the broker's default %d", frameMax, amqpwire.DefaultFrameMax)
			}
			closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
			ch, err := conn.Channel()
			if err != nil {
				t.Fatal(err)
			}
			q, err := ch.QueueDeclare("", false, true, true, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Value types of every kind figway and workers in other
			// languages put in headers.
			p := padTo(t, base, amqp091.Table{
				"s": "text", "i": int32(5), "l": int64(-1), "u": uint8(1), "f": 2.5, "t": true, "nil": nil,
				"b": []byte("raw"), "a": []any{"a", int64(1), []any{int16(2)}}, "tab": amqp091.Table{"k": "v"},
				"ts": time.Now(), "d": amqp091.Decimal{Scale: 2, Value: 314},
			}, frameMax+tc.over)
			err = amqpwire.FitsFrame(&p, frameMax)
			if got := err == nil; got != tc.fits {
				t.Fatalf("FitsFrame = %v; want fits %v", err, tc.fits)
			}
			if err := ch.Publish("", q.Name, false, false, p); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			// A round trip: the broker reads frames in order, so once it
			// answers, it has read the content header.
			_, err = ch.QueueDeclarePassive(q.Name, false, true, true, false, nil)
			if !tc.closes {
				if err != nil {
					t.Fatalf("round trip after publishing: %v; want the connection kept", err)
				}
				return
			}
			select {
			case e := <-closed:
				if e == nil || e.Code != amqp091.FrameError {
					t.Fatalf("connection closed with %v; want FRAME_ERROR", e)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("the broker kept the connection (round trip: %v); want FRAME_ERROR", err)
			}
		})
	}
}

// TestOversizedHeadersFailAlone: a request whose headers would not fit the
// negotiated frame_max fails with ErrHeadersTooLarge, unpublished, while
// calls on the same channels go on and the connection stays up.
func TestOversizedHeadersFailAlone(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	r := newResponder(t, url, "svc", 1, echo)
	c := startClient(t, clientConfig(url, config.ReplyDirect))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 10 {
		wg.Go(func() {
			for range 20 {
				if _, err := c.Call(ctx, "", "svc", request("test.v1.Svc/Get", "ok")); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, tc := range []struct {
		name string
		mod  func(*wire.Request)
	}{
		{"200 KB tracestate", func(r *wire.Request) {
			r.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
			r.Tracestate = "v=" + strings.Repeat("t", 200<<10)
		}},
		{"200 KB forwarded value", func(r *wire.Request) {
			r.Metadata = map[string][]string{"x-tenant-id": {strings.Repeat("m", 200<<10)}}
		}},
		{"header name over 255 bytes", func(r *wire.Request) {
			r.Metadata = map[string][]string{strings.Repeat("k", 300): {"v"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request("test.v1.Svc/Get", "big")
			tc.mod(req)
			_, err := c.Call(ctx, "", "svc", req)
			if !errors.Is(err, gateway.ErrHeadersTooLarge) || errors.Is(err, gateway.ErrUnavailable) {
				t.Fatalf("Call = %v; want ErrHeadersTooLarge only", err)
			}
			ev := request("test.v1.Svc/Placed", "big")
			tc.mod(ev)
			if err := c.Publish(ctx, "", "svc", ev); !errors.Is(err, gateway.ErrHeadersTooLarge) {
				t.Fatalf("Publish = %v; want ErrHeadersTooLarge", err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("an ordinary call failed: %v", err)
	}
	if s := c.Stats(); s.Reconnects != 0 || !s.Connected {
		t.Errorf("stats = %+v; want connected, no reconnect", s)
	}
	for _, d := range r.deliveries() {
		if string(d.Body) == "big" {
			t.Errorf("an oversized request was published: %v", d.Headers)
		}
	}
}
