package amqpwire

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/wire"
)

func TestHeaderFrameSizeRefusesWhatAMQPCannotEncode(t *testing.T) {
	for name, p := range map[string]amqp.Publishing{
		"long property":    {Type: strings.Repeat("t", 256)},
		"long header name": {Headers: amqp.Table{strings.Repeat("k", 256): "v"}},
		"unknown type":     {Headers: amqp.Table{"k": struct{}{}}},
		"unknown in array": {Headers: amqp.Table{"k": []any{"a", map[string]string{}}}},
	} {
		if _, err := HeaderFrameSize(&p); err == nil {
			t.Errorf("%s: HeaderFrameSize = nil error; want one (amqp091-go would fail after the method frame)", name)
		}
		if err := FitsFrame(&p, DefaultFrameMax); !errors.Is(err, ErrHeaderTooLarge) {
			t.Errorf("%s: FitsFrame = %v; want ErrHeaderTooLarge", name, err)
		}
	}
}

// reply is a worker's reply with status st and extra headers.
func reply(st *status.Status, extra amqp.Table) amqp.Publishing {
	h := wire.SetStatus(nil, st)
	for k, v := range extra {
		if h == nil {
			h = amqp.Table{}
		}
		h[k] = v
	}
	return amqp.Publishing{Headers: h, ContentType: wire.ContentTypeProtobuf, CorrelationId: wire.NewID(), AppId: "figway-worker", DeliveryMode: wire.Transient, Body: []byte("body")}
}

func TestFitReply(t *testing.T) {
	withDetails, _ := status.New(codes.NotFound, "no such order").WithDetails(
		&errdetails.ResourceInfo{ResourceName: strings.Repeat("r", 140<<10)})
	tests := []struct {
		name        string
		p           amqp.Publishing
		changed     bool
		code        codes.Code
		msgPrefix   string
		keepDetails bool
	}{
		{"small: unchanged", reply(status.New(codes.NotFound, "order o-1"), nil), false, codes.NotFound, "order o-1", false},
		{"OK: unchanged", reply(nil, amqp.Table{"figway-rmd-etag": "v1"}), false, codes.OK, "", false},
		{"140 KB message: trimmed", reply(status.New(codes.NotFound, "no order "+strings.Repeat("é", 70<<10)), nil), true, codes.NotFound, "no order éé", false},
		{"140 KB details: dropped, message kept", reply(withDetails, nil), true, codes.NotFound, "no such order", false},
		{"140 KB reply metadata: INTERNAL", reply(nil, amqp.Table{"figway-rmd-x": strings.Repeat("m", 140<<10)}), true, codes.Internal, "the worker's reply headers do not fit", false},
		{"140 KB trailer with an error: INTERNAL", reply(status.New(codes.NotFound, "nf"), amqp.Table{"figway-rmt-x": strings.Repeat("m", 140<<10)}), true, codes.Internal, "the worker's reply headers do not fit", false},
		{"header name over 255 bytes: INTERNAL", reply(nil, amqp.Table{"figway-rmd-" + strings.Repeat("k", 250): "v"}), true, codes.Internal, "the worker's reply headers cannot be encoded", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			changed := FitReply(&p, DefaultFrameMax)
			if changed != tc.changed {
				t.Errorf("FitReply changed = %v; want %v", changed, tc.changed)
			}
			if err := FitsFrame(&p, DefaultFrameMax); err != nil {
				t.Fatalf("after FitReply: %v", err)
			}
			st, err := wire.ReplyStatus(p.Headers)
			if err != nil {
				t.Fatal(err)
			}
			if st.Code() != tc.code || !strings.HasPrefix(st.Message(), tc.msgPrefix) || !utf8.ValidString(st.Message()) {
				t.Errorf("status = %v %.60q; want %v %q…, valid UTF-8", st.Code(), st.Message(), tc.code, tc.msgPrefix)
			}
			if changed && tc.code == codes.Internal && p.Body != nil {
				t.Errorf("an INTERNAL replacement keeps the body")
			}
			if strings.HasPrefix(tc.name, "140 KB message") && !strings.HasSuffix(st.Message(), truncatedMark) {
				t.Errorf("a trimmed message does not say so: …%q", st.Message()[len(st.Message())-40:])
			}
		})
	}
}
