package wire

import (
	"testing"
	"time"
)

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = NewID()
	}
}

// BenchmarkPublishing is the header building of every published request.
func BenchmarkPublishing(b *testing.B) {
	now := time.Now()
	r := &Request{
		Method: "orders.v1.OrderService/GetOrder", Body: make([]byte, 256), ContentType: ContentTypeProtobuf,
		MessageID: NewID(), Source: "figway://host", CorrelationID: NewID(), ReplyTo: DirectReplyTo,
		Deadline: now.Add(2 * time.Second), Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		Metadata: map[string][]string{"x-tenant-id": {"acme"}},
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Publishing(now)
	}
}
