package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/wire"
)

func TestStatusOf(t *testing.T) {
	tests := []struct {
		err      error
		wantCode codes.Code
		wantMsg  string
	}{
		{nil, codes.OK, ""},
		{status.Error(codes.NotFound, "no such order"), codes.NotFound, "no such order"},
		{context.DeadlineExceeded, codes.DeadlineExceeded, "context deadline exceeded"},
		{fmt.Errorf("db: %w", context.Canceled), codes.Canceled, "db: context canceled"},
		{&decodeError{err: errors.New("bad wire type")}, codes.InvalidArgument, "decode request: bad wire type"},
		{&encodeError{err: errors.New("invalid UTF-8")}, codes.Internal, "encode response: invalid UTF-8"},
		{errPanic, codes.Internal, "worker: handler panicked"},
		{errors.New("boom"), codes.Unknown, "boom"},
	}
	for _, tt := range tests {
		st := statusOf(tt.err)
		if st.Code() != tt.wantCode || st.Message() != tt.wantMsg {
			t.Errorf("statusOf(%v) = %v %q; want %v %q", tt.err, st.Code(), st.Message(), tt.wantCode, tt.wantMsg)
		}
	}
}

func TestCodecFor(t *testing.T) {
	tests := []struct {
		contentType string
		want        codec
		ok          bool
	}{
		{"application/protobuf", protobufCodec, true},
		{"application/x-protobuf", protobufCodec, true},
		{"Application/JSON; charset=utf-8", jsonCodec, true},
		{"application/json", jsonCodec, true},
		{"", 0, false},
		{"text/plain", 0, false},
		{"application/jsonx", 0, false},
	}
	for _, tt := range tests {
		if got, ok := codecFor(tt.contentType); got != tt.want || ok != tt.ok {
			t.Errorf("codecFor(%q) = %v, %v; want %v, %v", tt.contentType, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	for n := range 40 {
		full := backoffMax
		if n < 20 {
			full = min(backoffMin<<n, backoffMax)
		}
		for range 100 {
			if d := backoff(n); d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %v; want within [%v, %v]", n, d, full/2, full)
			}
		}
	}
}

// BenchmarkProcess measures the per-delivery path without I/O: deadline
// header, dispatch, decode, handler, encode. "string" shows the fixed cost
// of the path, "struct" a message the size of an order.
func BenchmarkProcess(b *testing.B) {
	w := New(Config{})
	Handle(w, "bench.v1.Bench/String", func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return req, nil
	})
	Handle(w, "bench.v1.Bench/Struct", func(ctx context.Context, req *structpb.Struct) (*structpb.Struct, error) {
		return req, nil
	})
	order, err := structpb.NewStruct(map[string]any{
		"order_id": "o-1", "customer_id": "c-1", "total_cents": 4200,
		"items": []any{map[string]any{"sku": "sku-1", "quantity": 2}, map[string]any{"sku": "sku-2", "quantity": 1}},
	})
	if err != nil {
		b.Fatal(err)
	}
	encodings := []struct {
		contentType string
		marshal     func(proto.Message) ([]byte, error)
	}{
		{wire.ContentTypeProtobuf, proto.Marshal},
		{wire.ContentTypeJSON, protojson.Marshal},
	}
	for _, m := range []struct {
		name string
		msg  proto.Message
	}{
		{"String", wrapperspb.String("o-1")},
		{"Struct", order},
	} {
		for _, enc := range encodings {
			body, err := enc.marshal(m.msg)
			if err != nil {
				b.Fatal(err)
			}
			d := &amqp.Delivery{
				Type:        "bench.v1.Bench/" + m.name,
				ContentType: enc.contentType,
				Headers:     amqp.Table{wire.HeaderDeadline: time.Now().Add(time.Hour).Format(wire.TimeLayout)},
				Body:        body,
			}
			b.Run(m.name+"/"+strings.TrimPrefix(enc.contentType, "application/"), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				ctx := context.Background()
				for b.Loop() {
					if o := w.process(ctx, d); o.st != nil {
						b.Fatal(o.st)
					}
				}
			})
		}
	}
}
