package gateway_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/wire"
)

const watchOrder = "orders.v1.OrderService/WatchOrder"

// streamer answers every stream with the messages of replies, in order,
// then the end with status end (nil: OK).
type streamer struct {
	publisher
	replies int
	end     *status.Status
}

func (s *streamer) Stream(_ context.Context, _, _ string, req *wire.Request, _ gateway.StreamBounds) (gateway.ReplyStream, error) {
	s.mu.Lock()
	s.reqs = append(s.reqs, *req)
	s.mu.Unlock()
	return &scripted{left: s.replies, end: s.end}, nil
}

type scripted struct {
	left int
	end  *status.Status
}

func (r *scripted) Next(context.Context) (*gateway.Reply, bool, error) {
	if r.left == 0 {
		return &gateway.Reply{Status: r.end}, true, nil
	}
	r.left--
	return &gateway.Reply{ContentType: wire.ContentTypeProtobuf}, false, nil
}

func (r *scripted) Close() {}

// A stream is one publish: its PRODUCER span lasts the whole stream, the
// message carries its traceparent, and it and the ingress's span get the
// number of messages passed on; the ingress's span gets the route, side
// and outcome as a unary call's does.
func TestStreamSpans(t *testing.T) {
	for _, tt := range []struct {
		name    string
		end     *status.Status
		outcome string
	}{
		{"OK", nil, "OK"},
		{"worker error", status.New(codes.NotFound, "no such order"), "NotFound"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &streamer{replies: 3, end: tt.end}
			g, rec, tracer := tracedGateway(t, p, "  - {method: "+watchOrder+", exchange: orders, routing_key: orders.watch}\n")
			ctx, server := tracer.Start(context.Background(), "server", trace.WithSpanKind(trace.SpanKindServer))
			sent := 0
			_, err := g.StreamRoute(ctx, g.Route(watchOrder), call(watchOrder), func(*gateway.Result) error { sent++; return nil })
			server.End()
			if status.Code(err) != tt.end.Code() || sent != 3 {
				t.Fatalf("StreamRoute = %d messages, %v; want 3, %v", sent, err, tt.end.Code())
			}
			spans := rec.Ended()
			if len(spans) != 2 {
				t.Fatalf("%d spans ended; want the PRODUCER and the server span", len(spans))
			}
			prod, srv := spans[0], spans[1]
			if prod.SpanKind() != trace.SpanKindProducer || prod.Parent().SpanID() != srv.SpanContext().SpanID() {
				t.Errorf("first span: %v, parent %v; want PRODUCER, a child of the server span", prod.SpanKind(), prod.Parent().SpanID())
			}
			want := "00-" + prod.SpanContext().TraceID().String() + "-" + prod.SpanContext().SpanID().String() + "-01"
			if got := p.reqs[0].Traceparent; got != want {
				t.Errorf("message traceparent = %s; want the PRODUCER span's %s", got, want)
			}
			for _, c := range []struct {
				name string
				got  map[attribute.Key]string
				want map[attribute.Key]string
			}{
				{"PRODUCER", attrs(prod), map[attribute.Key]string{gateway.AttrStreamMessages: "3", gateway.AttrRoute: watchOrder}},
				{"server", attrs(srv), map[attribute.Key]string{gateway.AttrStreamMessages: "3", gateway.AttrRoute: watchOrder,
					gateway.AttrSide: "broker", gateway.AttrOutcome: tt.outcome}},
			} {
				for k, v := range c.want {
					if c.got[k] != v {
						t.Errorf("%s span %s = %q; want %q", c.name, k, c.got[k], v)
					}
				}
			}
		})
	}
}
