package legacy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/figway/figway/adapters/legacy"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/grpcframe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// legacyOrders is the legacy service: a real grpc-go server that echoes
// what it sees so the tests can check what crossed the proxy.
type legacyOrders struct {
	ordersv1.UnimplementedOrderServiceServer
	seen chan seen
}

type seen struct {
	tenant   []string
	deadline time.Time
	hasDL    bool
}

func (s *legacyOrders) GetOrder(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	dl, ok := ctx.Deadline()
	s.seen <- seen{md.Get("x-tenant-id"), dl, ok}
	if req.GetOrderId() == "missing" {
		st, _ := status.New(codes.NotFound, "no order missing").WithDetails(&ordersv1.GetOrderRequest{OrderId: "missing"})
		return nil, st.Err()
	}
	grpc.SetHeader(ctx, metadata.Pairs("legacy-header", "h1"))
	grpc.SetTrailer(ctx, metadata.Pairs("legacy-trailer", "t1"))
	return legacyOrder(req.GetOrderId()), nil
}

func (s *legacyOrders) WatchOrder(req *ordersv1.WatchOrderRequest, stream grpc.ServerStreamingServer[ordersv1.OrderEvent]) error {
	stream.SetHeader(metadata.Pairs("legacy-header", "stream"))
	for i := range 5 {
		if err := stream.Send(&ordersv1.OrderEvent{OrderId: req.GetOrderId(), Status: ordersv1.OrderStatus(i % 5), At: timestamppb.New(time.Unix(int64(i), 0))}); err != nil {
			return err
		}
	}
	return status.Error(codes.Aborted, "stream ends with a status")
}

func legacyOrder(id string) *ordersv1.Order {
	return &ordersv1.Order{OrderId: id, CustomerId: "legacy", TotalCents: 4200, Note: "from the legacy service",
		Items: []*ordersv1.LineItem{{Sku: "a", Quantity: 1, UnitPriceCents: 4200}}}
}

// stack is the legacy server and a proxy in front of it.
type stack struct {
	svc            *legacyOrders
	proxy          *legacy.GRPC
	upAddr, frAddr string
}

// startStack starts the legacy server (seen buffered to seenCap) and the
// proxy, stopped when the test ends.
func startStack(tb testing.TB, seenCap int) *stack {
	tb.Helper()
	svc := &legacyOrders{seen: make(chan seen, seenCap)}
	up := grpc.NewServer()
	ordersv1.RegisterOrderServiceServer(up, svc)
	upLis, _ := net.Listen("tcp", "127.0.0.1:0")
	go up.Serve(upLis)
	p, err := legacy.DialGRPC(upLis.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	fr := grpc.NewServer(grpc.ForceServerCodecV2(grpcframe.NewCodec()), grpc.UnknownServiceHandler(p.Proxy))
	frLis, _ := net.Listen("tcp", "127.0.0.1:0")
	go fr.Serve(frLis)
	tb.Cleanup(func() { fr.Stop(); p.Close(); up.Stop() })
	return &stack{svc: svc, proxy: p, upAddr: upLis.Addr().String(), frAddr: frLis.Addr().String()}
}

// front starts the stack and returns a typed client of the proxy.
func front(t *testing.T) (ordersv1.OrderServiceClient, *legacyOrders, *legacy.GRPC) {
	t.Helper()
	st := startStack(t, 16)
	conn, err := grpc.NewClient(st.frAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ordersv1.NewOrderServiceClient(conn), st.svc, st.proxy
}

func TestUnaryPassthrough(t *testing.T) {
	c, svc, _ := front(t)
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-tenant-id", "acme"), 3*time.Second)
	defer cancel()
	var header, trailer metadata.MD
	got, err := c.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-9"}, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatalf("GetOrder through the proxy: %v", err)
	}
	if diff := cmp.Diff(legacyOrder("o-9"), got, protocmp.Transform()); diff != "" {
		t.Errorf("reply (-want +got):\n%s", diff)
	}
	if header.Get("legacy-header")[0] != "h1" || trailer.Get("legacy-trailer")[0] != "t1" {
		t.Errorf("header %v trailer %v; want the legacy service's", header, trailer)
	}
	s := <-svc.seen
	want, _ := ctx.Deadline()
	if !cmp.Equal(s.tenant, []string{"acme"}) || !s.hasDL || s.deadline.Sub(want).Abs() > 50*time.Millisecond {
		t.Errorf("legacy saw tenant %v deadline %v (%v); want [acme] and %v", s.tenant, s.deadline, s.hasDL, want)
	}

	_, err = c.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "missing"})
	st := status.Convert(err)
	if st.Code() != codes.NotFound || st.Message() != "no order missing" || len(st.Details()) != 1 {
		t.Errorf("GetOrder(missing) = %v (details %v); want the legacy NotFound with its details", err, st.Details())
	}
	<-svc.seen
}

func TestServerStreamingPassthrough(t *testing.T) {
	c, _, _ := front(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	stream, err := c.WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			t.Fatal("stream ended OK; want the legacy service's ABORTED")
		}
		if err != nil {
			if status.Code(err) != codes.Aborted || status.Convert(err).Message() != "stream ends with a status" {
				t.Errorf("stream end = %v; want Aborted 'stream ends with a status'", err)
			}
			break
		}
		want := &ordersv1.OrderEvent{OrderId: "o-1", Status: ordersv1.OrderStatus(n % 5), At: timestamppb.New(time.Unix(int64(n), 0))}
		if !proto.Equal(ev, want) {
			t.Errorf("event %d = %v; want %v", n, ev, want)
		}
		n++
	}
	if n != 5 {
		t.Errorf("received %d events; want 5", n)
	}
	if h, _ := stream.Header(); fmt.Sprint(h.Get("legacy-header")) != "[stream]" {
		t.Errorf("stream header = %v; want legacy-header: stream", h)
	}
}

func TestUnaryFrames(t *testing.T) {
	_, svc, p := front(t)
	req, _ := proto.Marshal(&ordersv1.GetOrderRequest{OrderId: "o-5"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, header, trailer, err := p.Unary(ctx, "/orders.v1.OrderService/GetOrder", req, metadata.Pairs("x-tenant-id", "t2"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(legacyOrder("o-5"))
	var got ordersv1.Order
	if err := proto.Unmarshal(resp, &got); err != nil || !proto.Equal(&got, legacyOrder("o-5")) {
		t.Errorf("Unary reply = %x; want %x", []byte(resp), want)
	}
	if header.Get("legacy-header")[0] != "h1" || trailer.Get("legacy-trailer")[0] != "t1" {
		t.Errorf("header %v trailer %v", header, trailer)
	}
	if s := <-svc.seen; !cmp.Equal(s.tenant, []string{"t2"}) {
		t.Errorf("legacy saw tenant %v; want [t2]", s.tenant)
	}
}

func TestUpstreamDown(t *testing.T) {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := lis.Addr().String()
	lis.Close() // nothing listens there
	p, err := legacy.DialGRPC(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, _, _, err = p.Unary(ctx, "/orders.v1.OrderService/GetOrder", nil, nil)
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Unary to a dead upstream = %v; want Unavailable", err)
	}
}
