package async

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

// TestAsyncReplyMetadata: an operation carries the reply metadata and the
// HTTP status the worker set, as the synchronous call would have answered
// with — over REST (response_headers under their own names, the rest as
// Grpc-Metadata-* and Grpc-Trailer-*, httpStatus in the metadata) and over
// gRPC (response headers and trailers, http_status in the metadata) — on
// the figway that took the call and on another that read it off the
// stream.
func TestAsyncReplyMetadata(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	w := worker.New(worker.Config{URL: url, Queue: "orders.requests", Logger: slog.New(slog.DiscardHandler)})
	worker.Handle(w, "orders.v1.OrderService/GetOrder", func(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
		time.Sleep(300 * time.Millisecond) // past async.after
		for _, err := range []error{
			worker.SetHTTPStatus(ctx, http.StatusCreated),
			worker.SetHeader(ctx, metadata.Pairs("location", "/v1/orders/"+req.GetOrderId(), "x-reason", "made", "x-trace-bin", "\x00\xff")),
			worker.SetTrailer(ctx, metadata.Pairs("x-took", "300ms")),
		} {
			if err != nil {
				return nil, err
			}
		}
		return &ordersv1.Order{OrderId: req.GetOrderId()}, nil
	})
	fault.RunWorker(t, w)

	key := writeKey(t)
	route := `, response_headers: [location], async: {after: 100ms, keep: 1m, timeout: 10s}`
	aAddr, bAddr := figway.NewAddrs(t), figway.NewAddrs(t)
	figway.Serve(t, writeAsyncRoutes(t, "", aAddr, url, key, route), aAddr, true)
	figway.Serve(t, writeAsyncRoutes(t, "", bAddr, url, key, route), bAddr, true)
	fault.WaitConsuming(t, w)

	accepted := do(t, "GET", "http://"+aAddr.HTTP+"/v1/orders/o-9")
	if accepted.code != http.StatusAccepted {
		t.Fatalf("slow call = %d %s; want 202", accepted.code, accepted.body)
	}
	loc := accepted.header.Get("Location")
	for _, a := range []figway.Addrs{aAddr, bAddr} {
		got := do(t, "GET", "http://"+a.HTTP+loc+"?wait=10s", "TE", "trailers")
		op := got.op(t)
		t.Logf("GET %s: %d, headers %v, trailers %v, metadata %+v", loc, got.code, got.header, got.trailer, op.Metadata)
		if got.code != 200 || !op.Done || op.Metadata.HTTPStatus != http.StatusCreated {
			t.Errorf("operation = %d %s; want 200, done, metadata.httpStatus 201", got.code, got.body)
		}
		if got.header.Get("Location") != "/v1/orders/o-9" || got.header.Get("Grpc-Metadata-X-Reason") != "made" ||
			got.trailer.Get("Grpc-Trailer-X-Took") != "300ms" {
			t.Errorf("operation's headers %v, trailers %v; want Location, Grpc-Metadata-X-Reason and the trailer Grpc-Trailer-X-Took", got.header, got.trailer)
		}

		var header, trailer metadata.MD
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		gop, err := longrunningpb.NewOperationsClient(figway.Dial(t, a.GRPC)).GetOperation(cctx,
			&longrunningpb.GetOperationRequest{Name: op.Name}, grpc.Header(&header), grpc.Trailer(&trailer))
		ccancel()
		if err != nil {
			t.Fatalf("GetOperation: %v", err)
		}
		var md structpb.Struct
		if err := gop.GetMetadata().UnmarshalTo(&md); err != nil || md.GetFields()["http_status"].GetNumberValue() != 201 {
			t.Errorf("GetOperation metadata %v (%v); want http_status 201", &md, err)
		}
		if strings.Join(header.Get("location"), ",") != "/v1/orders/o-9" || strings.Join(header.Get("x-reason"), ",") != "made" ||
			strings.Join(trailer.Get("x-took"), ",") != "300ms" || strings.Join(header.Get("x-trace-bin"), ",") != "\x00\xff" {
			t.Errorf("GetOperation header %v, trailer %v; want the worker's", header, trailer)
		}
	}
}
