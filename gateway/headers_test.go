package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
)

const validTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

// members returns n tracestate list members "k<i>=<v>", v of size chars.
func members(n, size int) []string {
	m := make([]string, n)
	for i := range m {
		k := fmt.Sprintf("k%d=", i)
		m[i] = k + strings.Repeat("v", max(size-len(k), 1))
	}
	return m
}

func TestTracestateBoundedPerW3C(t *testing.T) {
	thirty := members(33, 10)
	wide := members(10, 60) // 10 × 60 + 9 commas: over 512
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"short, unchanged", "a=1,b=2", "a=1,b=2"},
		{"32 members, unchanged", strings.Join(thirty[:32], ","), strings.Join(thirty[:32], ",")},
		{"33 members: the rightmost dropped", strings.Join(thirty, ","), strings.Join(thirty[:32], ",")},
		{"over 512 characters: members dropped from the right", strings.Join(wide, ","), strings.Join(wide[:8], ",")},
		{"members over 128 characters go first", strings.Join(append([]string{"big=" + strings.Repeat("x", 200)}, wide[:8]...), ","), strings.Join(wide[:8], ",")},
		{"one 200 KB member: dropped", "v=" + strings.Repeat("t", 200<<10), ""},
		{"200 KB of commas: nothing", strings.Repeat(",", 200<<10), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &publisher{fn: replyOK}
			g := newGateway(p, table(t, "  - {method: "+getOrder+", routing_key: k}\n", nil))
			c := call(getOrder)
			c.Traceparent, c.Tracestate = validTraceparent, tc.in
			if _, err := g.Invoke(context.Background(), c); err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			got := p.reqs[0].Tracestate
			if got != tc.want {
				t.Errorf("tracestate published = %.80q (%d chars); want %.80q (%d chars)", got, len(got), tc.want, len(tc.want))
			}
			if len(got) > 512 || strings.Count(got, ",") >= 32 {
				t.Errorf("tracestate published has %d chars, %d members; W3C bounds are 512 and 32", len(got), strings.Count(got, ",")+1)
			}
		})
	}
}

func TestForwardedHeadersBounded(t *testing.T) {
	route := "  - {method: " + getOrder + ", routing_key: k, forward_headers: [x-tenant-id, x-user]}\n"
	tests := []struct {
		name   string
		server string // extra keys of server:
		header map[string][]string
		ok     bool
	}{
		{"ordinary", "", map[string][]string{"x-tenant-id": {"acme"}}, true},
		{"a value at the default 8 KiB", "", map[string][]string{"x-tenant-id": {strings.Repeat("a", 8<<10)}}, true},
		{"a value over the default 8 KiB", "", map[string][]string{"x-tenant-id": {strings.Repeat("a", 8<<10+1)}}, false},
		{"a 200 KB value", "", map[string][]string{"x-tenant-id": {strings.Repeat("a", 200<<10)}}, false},
		{"many values, each small, over the 32 KiB total", "", map[string][]string{"x-tenant-id": strings.Split(strings.Repeat("abcdefgh,", 4<<10), ",")}, false},
		{"two headers over the total together", "", map[string][]string{"x-tenant-id": {strings.Repeat("a", 8<<10)}, "x-user": slicesOf(3, strings.Repeat("u", 8<<10))}, false},
		{"a value within a raised limit", "max_forwarded_value_bytes: 65536, max_forwarded_bytes: 131072", map[string][]string{"x-tenant-id": {strings.Repeat("a", 60<<10)}}, true},
		{"a value over a lowered limit", "max_forwarded_value_bytes: 16", map[string][]string{"x-tenant-id": {strings.Repeat("a", 17)}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := "descriptors: [orders.binpb]\nserver: {" + tc.server + "}\nbroker: {url: \"amqp://guest:guest@127.0.0.1:5672/\"}\nroutes:\n" + route
			cfg, err := config.Parse([]byte(file), "../examples/orders")
			if err != nil {
				t.Fatalf("config.Parse: %v", err)
			}
			tb, err := cfg.Table(nil)
			if err != nil {
				t.Fatal(err)
			}
			p := &publisher{fn: replyOK}
			g := newGateway(p, tb)
			c := call(getOrder)
			c.Header = func(k string) []string { return tc.header[k] }
			_, err = g.Invoke(context.Background(), c)
			if tc.ok {
				if err != nil {
					t.Fatalf("Invoke = %v; want OK", err)
				}
				return
			}
			if !errors.Is(err, gateway.ErrHeadersTooLarge) || gateway.Code(err) != codes.ResourceExhausted {
				t.Fatalf("Invoke = %v (%v); want ErrHeadersTooLarge, RESOURCE_EXHAUSTED", err, gateway.Code(err))
			}
			if n := p.calls.Load(); n != 0 {
				t.Errorf("%d calls published; want none", n)
			}
		})
	}
}

func slicesOf(n int, s string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// The headers figway itself adds stay far below frame_max whatever the
// caller sends, once tracestate and forwarded headers are bounded.
func TestBoundedHeadersFitDefaultFrameMax(t *testing.T) {
	p := &publisher{fn: replyOK}
	g := newGateway(p, table(t, "  - {method: "+getOrder+", routing_key: k, forward_headers: [a, b, c, d]}\n", nil))
	c := call(getOrder)
	c.Traceparent, c.Tracestate = validTraceparent, strings.Join(members(32, 15), ",")
	c.Header = func(k string) []string { return []string{strings.Repeat(k, 7<<10)} }
	if _, err := g.Invoke(context.Background(), c); err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	req := p.reqs[0]
	req.CorrelationID, req.ReplyTo = wire.NewID(), wire.DirectReplyTo
	pub := amqpwire.Publishing(&req, req.Deadline)
	n, err := amqpwire.HeaderFrameSize(&pub)
	if err != nil || n > amqpwire.DefaultFrameMax/3 {
		t.Errorf("header frame of a call at every default limit = %d bytes, %v; want well under frame_max %d", n, err, amqpwire.DefaultFrameMax)
	}
}
