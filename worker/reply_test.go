package worker

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/wire"
)

// call runs method's handler on w for a request with headers h, as a
// delivery would.
func processCall(t *testing.T, w *Worker, h amqp.Table) outcome {
	t.Helper()
	body, _ := proto.Marshal(wrapperspb.String("in"))
	return w.process(context.Background(), &amqp.Delivery{
		Type: "test.v1.Svc/M", ContentType: wire.ContentTypeProtobuf, Body: body, Headers: h, ReplyTo: "r",
	})
}

func TestReplyMetadataOfHandler(t *testing.T) {
	w := New(Config{URL: "amqp://localhost/", Queue: "q"})
	Handle(w, "test.v1.Svc/M", func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		for _, err := range []error{
			SetHeader(ctx, metadata.Pairs("Location", "/v1/x/1", "x-multi", "a")),
			SetHeader(ctx, metadata.Pairs("x-multi", "b")),
			SetTrailer(ctx, metadata.Pairs("x-took", "1ms")),
			SetHTTPStatus(ctx, http.StatusCreated),
		} {
			if err != nil {
				t.Errorf("setting reply metadata: %v", err)
			}
		}
		if err := SetHeader(ctx, metadata.Pairs("grpc-status", "0")); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("SetHeader(grpc-status) = %v; want refused", err)
		}
		if err := SetHTTPStatus(ctx, http.StatusNotFound); err == nil {
			t.Error("SetHTTPStatus(404) = nil; want refused: errors are statuses")
		}
		if req.GetValue() == "fail" {
			return nil, status.Error(codes.NotFound, "nope")
		}
		return req, nil
	})
	o := processCall(t, w, nil)
	want := wire.ReplyMeta{
		Header:     map[string][]string{"location": {"/v1/x/1"}, "x-multi": {"a", "b"}},
		Trailer:    map[string][]string{"x-took": {"1ms"}},
		HTTPStatus: http.StatusCreated,
	}
	if o.st != nil || !cmp.Equal(o.meta, want) {
		t.Errorf("process = %v, meta %+v; want OK with %+v", o.st, o.meta, want)
	}

	for _, err := range []error{SetHeader(context.Background(), metadata.Pairs("a", "b")), SetHTTPStatus(context.Background(), 201)} {
		if err != errNoHandler {
			t.Errorf("setter outside a handler = %v; want %v", err, errNoHandler)
		}
	}
}

func TestShadowOptions(t *testing.T) {
	var real, dry int
	h := func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		real++
		return req, nil
	}
	w := New(Config{URL: "amqp://localhost/", Queue: "q"})
	Handle(w, "test.v1.Svc/M", h, OnShadow(func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		dry++
		if !IsShadow(ctx) {
			t.Error("IsShadow in the dry run = false")
		}
		return wrapperspb.String("dry"), nil
	}))
	processCall(t, w, amqp.Table{wire.HeaderShadow: int32(1)})
	processCall(t, w, nil)
	if real != 1 || dry != 1 {
		t.Errorf("handler ran %d times, dry run %d; want 1 and 1", real, dry)
	}

	skip := New(Config{URL: "amqp://localhost/", Queue: "q"})
	Handle(skip, "test.v1.Svc/M", h, SkipShadows())
	if o := processCall(t, skip, amqp.Table{wire.HeaderShadow: int32(1)}); !o.skipped || status.Code(o.st.Err()) != codes.Unimplemented {
		t.Errorf("a skipped shadow = %+v; want skipped, UNIMPLEMENTED", o)
	}
	if real != 1 {
		t.Errorf("SkipShadows ran the handler for a shadow copy")
	}

	defer func() {
		if v := recover(); v == nil || !strings.Contains(v.(string), "OnShadow") {
			t.Errorf("Handle with an OnShadow of other types: panic %v; want one naming OnShadow", v)
		}
	}()
	Handle(New(Config{URL: "amqp://localhost/", Queue: "q"}), "test.v1.Svc/M", h,
		OnShadow(func(context.Context, *wrapperspb.Int32Value) (*wrapperspb.StringValue, error) { return nil, nil }))
}
