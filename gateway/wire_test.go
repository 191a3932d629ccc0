package gateway_test

import (
	"context"
	"testing"
)

// TestCloudEvents: events carry the cloudEvents:* headers, rpc requests
// only on routes with wire: {cloudevents: always} (docs/wire-protocol.md).
func TestCloudEvents(t *testing.T) {
	tests := []struct {
		name, routes, method string
		want                 bool
	}{
		{"rpc", "  - {method: " + getOrder + ", routing_key: k}\n", getOrder, false},
		{"rpc, always", "  - {method: " + getOrder + ", routing_key: k, wire: {cloudevents: always}}\n", getOrder, true},
		{"rpc, always by default", "  - {method: " + getOrder + ", routing_key: k}\ndefaults: {wire: {cloudevents: always}}\n", getOrder, true},
		{"event", "  - {method: " + placeOrder + ", routing_key: k, pattern: event}\n", placeOrder, true},
		{"event, events", "  - {method: " + placeOrder + ", routing_key: k, pattern: event, wire: {cloudevents: events}}\n", placeOrder, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &publisher{fn: replyOK}
			g := newGateway(p, table(t, tc.routes, nil))
			if _, err := g.Invoke(context.Background(), call(tc.method)); err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if got := p.reqs[0].CloudEvents; got != tc.want {
				t.Errorf("published request's CloudEvents = %v; want %v", got, tc.want)
			}
		})
	}
}
