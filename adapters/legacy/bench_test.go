package legacy_test

import (
	"bytes"
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/grpcframe"
)

// rawPair returns connections that move undecoded frames: straight to the
// legacy server, and through the proxy in front of it.
func rawPair(tb testing.TB) (direct, proxied *grpc.ClientConn) {
	tb.Helper()
	st := startStack(tb, 1024)
	dial := func(addr string) *grpc.ClientConn {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpcframe.NewCodec())))
		if err != nil {
			tb.Fatal(err)
		}
		return c
	}
	direct, proxied = dial(st.upAddr), dial(st.frAddr)
	tb.Cleanup(func() { direct.Close(); proxied.Close() })
	// The legacy server reports each call on seen; drain it.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-st.svc.seen:
			case <-ctxDone(tb):
				return
			}
		}
	}()
	tb.Cleanup(func() { <-done })
	return direct, proxied
}

// TestPassthroughByteExact: the bytes a caller gets through the proxy are
// the bytes the legacy service sent.
func TestPassthroughByteExact(t *testing.T) {
	direct, proxied := rawPair(t)
	req, _ := proto.Marshal(&ordersv1.GetOrderRequest{OrderId: "o-bytes"})
	in := grpcframe.Frame(req)
	var a, b grpcframe.Frame
	ctx := context.Background()
	if err := direct.Invoke(ctx, "/orders.v1.OrderService/GetOrder", &in, &a); err != nil {
		t.Fatal(err)
	}
	if err := proxied.Invoke(ctx, "/orders.v1.OrderService/GetOrder", &in, &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) || len(a) == 0 {
		t.Errorf("through the proxy %x; direct %x; want the same bytes", []byte(b), []byte(a))
	}
}

// BenchmarkPassthrough measures the proxy's overhead against calling the
// legacy service directly, in the same run.
func BenchmarkPassthrough(b *testing.B) {
	direct, proxied := rawPair(b)
	req, _ := proto.Marshal(&ordersv1.GetOrderRequest{OrderId: "o-bench"})
	for _, tc := range []struct {
		name string
		conn *grpc.ClientConn
	}{{"direct", direct}, {"via-figway-proxy", proxied}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			in := grpcframe.Frame(req)
			for b.Loop() {
				var out grpcframe.Frame
				if err := tc.conn.Invoke(context.Background(), "/orders.v1.OrderService/GetOrder", &in, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// ctxDone is closed when the test's context ends (before its cleanups).
func ctxDone(tb testing.TB) <-chan struct{} { return tb.Context().Done() }
