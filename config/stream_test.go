package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/figway/figway/gateway"
)

func TestStreamBounds(t *testing.T) {
	const watch = "acme.v1.OrderService/WatchOrders"
	file := withLegacy + "defaults: {stream: {max_messages: 64, idle: 5s}}\nroutes:\n" +
		"  - {method: " + watch + ", routing_key: w, stream: {max_bytes: 65536}}\n" +
		"  - {method: " + get + ", routing_key: k}\n"
	c, err := Parse([]byte(file), apiDir(t))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	// A route takes each bound it leaves out from defaults; the gateway
	// gives what is still 0 its default.
	if diff := cmp.Diff(gateway.StreamBounds{Messages: 64, Bytes: 65536, Idle: 5 * time.Second}, c.Routes[0].Stream); diff != "" {
		t.Errorf("routes[0].Stream (-want +got):\n%s", diff)
	}
	if got, want := c.Routes[0].Stream.WithDefaults(), (gateway.StreamBounds{Messages: 64, Bytes: 65536, Idle: 5 * time.Second}); got != want {
		t.Errorf("WithDefaults() = %+v; want %+v", got, want)
	}
	if got, want := (gateway.StreamBounds{}).WithDefaults(), (gateway.StreamBounds{Messages: 1024, Bytes: 8 << 20, Idle: 30 * time.Second}); got != want {
		t.Errorf("zero WithDefaults() = %+v; want %+v", got, want)
	}

	tests := []struct{ name, stream, want string }{
		{"zero messages", "{max_messages: 0}", "routes[0].stream.max_messages (line 4): must be at least 1, not 0"},
		{"too many bytes", "{max_bytes: 2147483648}", "routes[0].stream.max_bytes (line 4): must be at most 1073741824, not 2147483648 (1 GiB)"},
		{"idle", "{idle: 10}", "routes[0].stream.idle (line 4): invalid duration 10"},
		{"unknown", "{messages: 3}", "routes[0].stream.messages (line 4): unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := withLegacy + "routes: [{method: " + watch + ", routing_key: w, stream: " + tt.stream + "}]\n"
			_, err := Parse([]byte(file), apiDir(t))
			checkProblems(t, "Parse("+quote(file)+")", err, []string{tt.want})
		})
	}
}
