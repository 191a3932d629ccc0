package amqpwire_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
)

func TestPublishing(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	r := &wire.Request{
		Method: "orders.v1.OrderService/GetOrder", Body: []byte("x"), ContentType: wire.ContentTypeProtobuf,
		MessageID: wire.NewID(), Source: "figway://h", CorrelationID: wire.NewID(), ReplyTo: wire.DirectReplyTo,
		Deadline:    now.Add(1500*time.Millisecond + 400*time.Microsecond),
		Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Tracestate: "k=v",
		Metadata: map[string][]string{"x-one": {"a"}, "x-two": {"b", "c"}},
	}
	p := amqpwire.Publishing(r, now)
	if p.Expiration != "1501" || p.DeliveryMode != wire.Transient || p.AppId != wire.AppID || p.Type != r.Method || !p.Timestamp.Equal(now) {
		t.Errorf("Publishing = expiration %q mode %d app %q type %q time %v", p.Expiration, p.DeliveryMode, p.AppId, p.Type, p.Timestamp)
	}
	// An rpc request carries no cloudEvents:* headers unless asked to.
	want := amqp.Table{
		wire.HeaderDeadline:    "2026-11-26T12:00:01.500400000Z",
		wire.HeaderTraceparent: r.Traceparent, wire.HeaderTracestate: "k=v",
		"figway-md-x-one": "a", "figway-md-x-two": []any{"b", "c"},
	}
	if diff := cmp.Diff(want, p.Headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	r.CloudEvents = true
	want[wire.HeaderCESpecVersion], want[wire.HeaderCEID], want[wire.HeaderCESource] = "1.0", r.MessageID, "figway://h"
	want[wire.HeaderCEType], want[wire.HeaderCETime] = r.Method, "2026-11-26T12:00:00.000000000Z"
	if diff := cmp.Diff(want, amqpwire.Publishing(r, now).Headers); diff != "" {
		t.Errorf("headers with CloudEvents (-want +got):\n%s", diff)
	}
	if err := p.Headers.Validate(); err != nil {
		t.Errorf("headers are not a valid AMQP table: %v", err)
	}
	dl, ok, err := wire.Deadline(p.Headers)
	if !ok || err != nil || !dl.Equal(r.Deadline) {
		t.Errorf("Deadline = %v %v %v; want %v", dl, ok, err, r.Deadline)
	}
	if diff := cmp.Diff(map[string][]string{"x-one": {"a"}, "x-two": {"b", "c"}}, wire.Metadata(p.Headers)); diff != "" {
		t.Errorf("Metadata (-want +got):\n%s", diff)
	}
	r.Persistent, r.Deadline = true, time.Time{}
	if p := amqpwire.Publishing(r, now); p.DeliveryMode != wire.Persistent || p.Expiration != "" || p.Headers[wire.HeaderDeadline] != nil {
		t.Errorf("event Publishing = mode %d expiration %q deadline %v; want 2 and none", p.DeliveryMode, p.Expiration, p.Headers[wire.HeaderDeadline])
	}
}

func TestIsShadow(t *testing.T) {
	r := &wire.Request{Method: "a.B/C", Shadow: true}
	if !wire.IsShadow(amqpwire.Publishing(r, time.Now()).Headers) {
		t.Error("IsShadow of a shadow copy = false")
	}
	r.Shadow = false
	if wire.IsShadow(amqpwire.Publishing(r, time.Now()).Headers) {
		t.Error("IsShadow of a call = true")
	}
	for _, v := range []any{int64(1), "1", true, uint8(1)} {
		if !wire.IsShadow(amqp.Table{wire.HeaderShadow: v}) {
			t.Errorf("IsShadow(figway-shadow: %#v) = false", v)
		}
	}
	for _, v := range []any{int32(0), "yes", false} {
		if wire.IsShadow(amqp.Table{wire.HeaderShadow: v}) {
			t.Errorf("IsShadow(figway-shadow: %#v) = true", v)
		}
	}
}
