package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/wire"
)

// Callers get figway's stable words, not the broker's or a worker's
// internals; the ingresses log the whole error.
func TestStatusHidesInternals(t *testing.T) {
	frame := `Exception (501) Reason: "FRAME_ERROR - type 2, all octets = <<>>: {frame_too_large,205343,131064}"`
	tests := []struct {
		name     string
		err      error
		code     codes.Code
		want     string
		internal []string
	}{
		{"connection closed by the broker", fmt.Errorf("m: %w: %w: channel closed: %s", gateway.ErrUnavailable, gateway.ErrChannelLost, frame),
			codes.Unavailable, "broker unavailable: channel lost after publishing", []string{"FRAME_ERROR", "501"}},
		{"unroutable", fmt.Errorf("m: %w: %w: exchange %q routing key %q: 312 NO_ROUTE", gateway.ErrUnavailable, gateway.ErrUnroutable, "orders", "orders.secret"),
			codes.Unavailable, "broker unavailable: message unroutable", []string{"orders.secret", "NO_ROUTE"}},
		{"worker's bad status header", fmt.Errorf("%w: %w: figway-status has type amqp091.Table, want an integer", gateway.ErrBadReply, wire.ErrBadStatus),
			codes.Internal, "bad reply", []string{"amqp091", "figway-status"}},
		{"deadline", fmt.Errorf("m: no reply before the deadline: %w", context.DeadlineExceeded),
			codes.DeadlineExceeded, "no answer before the deadline", nil},
		{"unknown", fmt.Errorf("amqp091: *net.OpError at 0xc000"), codes.Unknown, "internal error", []string{"amqp091", "0xc000"}},
		{"the caller's own mistake keeps its detail", fmt.Errorf("m: %w: header x-tenant-id has a value of 9000 bytes", gateway.ErrHeadersTooLarge),
			codes.ResourceExhausted, "m: request headers too large: header x-tenant-id has a value of 9000 bytes", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := gateway.Status(tc.err)
			if st.Code() != tc.code || st.Message() != tc.want {
				t.Errorf("Status(%v) = %v %q; want %v %q", tc.err, st.Code(), st.Message(), tc.code, tc.want)
			}
			for _, s := range tc.internal {
				if strings.Contains(st.Message(), s) {
					t.Errorf("caller's message %q shows %q", st.Message(), s)
				}
			}
		})
	}
}
