package grpcin_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fullstorydev/grpcurl"
	"github.com/jhump/protoreflect/grpcreflect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/figway/figway/adapters/grpcin"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/testing/core"
)

// TestGrpcurlWithoutProtoFiles runs grpcurl (its library, as its command
// does: descriptors from server reflection, no proto files) against the
// ingress with health and live reflection registered as figway serve
// registers them: every service it lists resolves, and
// grpc.health.v1.Health/Check answers SERVING.
func TestGrpcurlWithoutProtoFiles(t *testing.T) {
	cfg, _ := core.Load(t, routesTmpl, "amqp://127.0.0.1:1/", "../../examples/orders/orders.binpb")
	table, err := cfg.Table(nil)
	if err != nil {
		t.Fatal(err)
	}
	gw := gateway.New(gateway.Options{Table: table, Logger: slog.New(slog.DiscardHandler)})
	srv := grpcin.New(gw, grpcin.Options{
		Logger: slog.New(slog.DiscardHandler),
		Register: func(s *grpc.Server) {
			grpcin.RegisterHealth(s).SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
			grpcin.RegisterLiveReflection(s, func() *protoregistry.Files { return gw.Table().Files() })
		},
	})
	cc := serve(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc := grpcreflect.NewClientAuto(ctx, cc)
	defer rc.Reset()
	src := grpcurl.DescriptorSourceFromServer(ctx, rc)

	services, err := grpcurl.ListServices(src)
	if err != nil {
		t.Fatalf("grpcurl list: %v", err)
	}
	for _, want := range []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "orders.v1.OrderService"} {
		if !strings.Contains(strings.Join(services, " "), want) {
			t.Errorf("grpcurl list = %v; want %s in it", services, want)
		}
	}
	for _, s := range services {
		if _, err := grpcurl.ListMethods(src, s); err != nil {
			t.Errorf("grpcurl list %s: %v; want every listed service to resolve", s, err)
		}
	}

	parser, formatter, err := grpcurl.RequestParserAndFormatter(grpcurl.FormatJSON, src, strings.NewReader(""), grpcurl.FormatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	h := &grpcurl.DefaultEventHandler{Out: &out, Formatter: formatter}
	if err := grpcurl.InvokeRPC(ctx, src, cc, "grpc.health.v1.Health/Check", nil, h, parser.Next); err != nil {
		t.Fatalf("grpcurl grpc.health.v1.Health/Check: %v", err)
	}
	if h.Status.Code() != codes.OK || !strings.Contains(out.String(), `"SERVING"`) {
		t.Errorf("grpcurl grpc.health.v1.Health/Check = %v, %s; want OK and SERVING", h.Status, out.String())
	}
}
