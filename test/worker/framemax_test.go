package worker_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/worker"
)

// TestOversizedReplyFailsAlone: reply metadata counts against the broker's
// frame_max (128 KiB). A handler that sets more than fits gets its call
// answered INTERNAL with a message that says why, its metadata and body
// dropped; an oversized error message is trimmed instead. Before, the
// broker closed the worker's connection on each such reply (FRAME_ERROR)
// and redelivered every request in flight on it. The ordinary calls
// interleaved with them on the same connection are all answered, and the
// worker never reconnects.
func TestOversizedReplyFailsAlone(t *testing.T) {
	t.Parallel()
	const bigMethod = "test.v1.Test/Big"
	url := rabbitmq.ForTest(t).NewVHost(t)
	w, _ := startWorker(t, worker.Config{URL: url, Queue: testQueue, Declare: &worker.Queue{}, Concurrency: 8}, func(w *worker.Worker) {
		worker.Handle(w, echoMethod, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
			return wrapperspb.String("echo: " + req.GetValue()), nil
		})
		// The request names what to set: "header", "trailer" or "error"
		// of 140 KB, or "header-fits" of 120 KB.
		worker.Handle(w, bigMethod, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
			var err error
			switch req.GetValue() {
			case "header":
				err = worker.SetHeader(ctx, metadata.Pairs("x-big", strings.Repeat("h", 140<<10)))
			case "trailer":
				err = worker.SetTrailer(ctx, metadata.Pairs("x-big", strings.Repeat("t", 140<<10)))
			case "header-fits":
				err = worker.SetHeader(ctx, metadata.Pairs("x-big", strings.Repeat("h", 120<<10)))
			case "error":
				return nil, status.Error(codes.NotFound, "no order "+strings.Repeat("x", 140<<10))
			}
			if err != nil {
				return nil, err
			}
			return req, nil
		})
	})
	c := newCaller(t, url)

	type sent struct {
		method, value string
	}
	calls := map[string]sent{} // by correlation id
	for i := range 5 {
		for _, v := range []string{"header", "trailer", "header-fits", "error"} {
			calls[c.publish(testQueue, request(t, bigMethod, wrapperspb.String(v)))] = sent{bigMethod, v}
			for j := range 4 {
				v := strings.Repeat("o", i*4+j)
				calls[c.publish(testQueue, request(t, echoMethod, wrapperspb.String(v)))] = sent{echoMethod, v}
			}
		}
	}
	for range len(calls) {
		d := c.next()
		s, ok := calls[d.CorrelationId]
		if !ok {
			t.Fatalf("reply to an unknown or already answered call %q", d.CorrelationId)
		}
		delete(calls, d.CorrelationId)
		st, err := wire.ReplyStatus(d.Headers)
		if err != nil {
			t.Fatalf("ReplyStatus: %v", err)
		}
		md, err := wire.ReplyMetadata(d.Headers)
		if err != nil {
			t.Fatalf("ReplyMetadata: %v", err)
		}
		var got wrapperspb.StringValue
		if st == nil {
			if err := proto.Unmarshal(d.Body, &got); err != nil {
				t.Fatalf("%s(%.20q): body: %v", s.method, s.value, err)
			}
		}
		switch {
		case s.method == echoMethod:
			if st != nil || got.GetValue() != "echo: "+s.value {
				t.Errorf("Echo(%q) = %v, %q; want OK", s.value, st, got.GetValue())
			}
		case s.value == "header-fits":
			if st != nil || len(md.Header["x-big"]) != 1 || len(md.Header["x-big"][0]) != 120<<10 {
				t.Errorf("Big(header-fits) = %v; want OK with its 120 KB header", st)
			}
		case s.value == "error":
			if st.Code() != codes.NotFound || !strings.HasPrefix(st.Message(), "no order xxx") || !strings.Contains(st.Message(), "truncated") {
				t.Errorf("Big(error) = %v %.40q…; want NotFound with its message trimmed", st.Code(), st.Message())
			}
		default:
			if st.Code() != codes.Internal || !strings.Contains(st.Message(), "reply headers do not fit the broker's frame_max") ||
				!md.IsZero() || len(d.Body) != 0 {
				t.Errorf("Big(%s) = %v %q, metadata of %d keys, %d bytes of body; want INTERNAL saying why, nothing else",
					s.value, st.Code(), st.Message(), len(md.Header)+len(md.Trailer), len(d.Body))
			}
		}
	}
	if st := w.Stats(); st.Connects != 1 || st.Trimmed != 15 {
		t.Errorf("Stats() = %+v; want 1 connect and 15 replies trimmed", st)
	}
}
