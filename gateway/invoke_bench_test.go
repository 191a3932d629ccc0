package gateway_test

import (
	"context"
	"testing"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/wire"
)

// nopPublisher answers every call at once, so the benchmark measures the
// gateway alone.
type nopPublisher struct{}

func (nopPublisher) Call(context.Context, string, string, *wire.Request) (*gateway.Reply, error) {
	return &gateway.Reply{}, nil
}

func (nopPublisher) Publish(context.Context, string, string, *wire.Request) error { return nil }

// BenchmarkInvoke is the gateway's own cost per rpc call: route lookup,
// bulkhead, deadline, breaker, request and trace context building.
func BenchmarkInvoke(b *testing.B) {
	g := gateway.New(gateway.Options{Publisher: nopPublisher{}, Table: table(b, "  - {method: "+getOrder+", routing_key: k}\n", nil)})
	c := call(getOrder)
	c.Body = make([]byte, 256)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Invoke(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}
