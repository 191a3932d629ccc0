package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseResilienceRules(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // one substring per problem, in order; nil: valid
	}{
		{"ratio window", route("routing_key: k, breaker: {failure_ratio: 0.5, window: 30s, min_requests: 20}"), nil},
		{"ratio one", route("routing_key: k, breaker: {failure_ratio: 1}"), nil},
		{"window inherits ratio", base + "defaults: {breaker: {failure_ratio: 0.5}}\n" +
			"routes:\n  - {method: " + get + ", routing_key: k, breaker: {window: 10s}}\n", nil},
		{"ratio zero", route("routing_key: k, breaker: {failure_ratio: 0}"), []string{
			"routes[0].breaker.failure_ratio (line 5): must be above 0 and at most 1, not 0"}},
		{"ratio above one", route("routing_key: k, breaker: {failure_ratio: 1.5}"), []string{
			"routes[0].breaker.failure_ratio (line 5): must be above 0 and at most 1, not 1.5"}},
		{"ratio percent string", route("routing_key: k, breaker: {failure_ratio: 50%}"), []string{
			`routes[0].breaker.failure_ratio (line 5): want a fraction such as 0.5, not "50%"`}},
		{"window without ratio", route("routing_key: k, breaker: {window: 30s, min_requests: 5}"), []string{
			"routes[0].breaker.window (line 5): needs failure_ratio",
			"routes[0].breaker.min_requests (line 5): needs failure_ratio"}},
		{"defaults window without ratio", base + "defaults: {breaker: {window: 30s}}\n", []string{
			"defaults.breaker.window (line 3): needs failure_ratio"}},
		{"bad window", route("routing_key: k, breaker: {failure_ratio: 0.5, window: 0s, min_requests: 0}"), []string{
			"routes[0].breaker.window (line 5): must be positive, not 0s",
			"routes[0].breaker.min_requests (line 5): must be at least 1, not 0"}},
		{"retry idempotent", route("routing_key: k, retry: idempotent"), nil},
		{"retry unknown", route("routing_key: k, retry: always"), []string{
			`routes[0].retry (line 5): unknown value "always"; want idempotent`}},
		{"retry on event", route("routing_key: k, pattern: event, retry: idempotent"), []string{
			"routes[0].retry (line 5): only for rpc routes"}},
		{"retry on legacy", route("to: legacy, retry: idempotent"), []string{
			"routes[0].retry (line 5): only for broker routes"}},
	}
	dir := apiDir(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.file), dir)
			checkProblems(t, "Parse("+quote(tt.file)+")", err, tt.want)
		})
	}
}

func TestBreakerWindowDefaults(t *testing.T) {
	file := base + "defaults: {breaker: {failures: 3, failure_ratio: 0.25}}\nroutes:\n" +
		"  - {method: " + get + ", routing_key: k, retry: idempotent}\n" +
		"  - {method: acme.v1.OrderService/PlaceOrder, routing_key: p, breaker: {failure_ratio: 0.5, window: 5s, min_requests: 4}}\n"
	c, err := Parse([]byte(file), apiDir(t))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []Breaker{
		{Failures: 3, OpenFor: 10 * time.Second, HalfOpenRequests: 1, FailureRatio: 0.25, Window: time.Minute, MinRequests: 10},
		{Failures: 3, OpenFor: 10 * time.Second, HalfOpenRequests: 1, FailureRatio: 0.5, Window: 5 * time.Second, MinRequests: 4},
	}
	for i, w := range want {
		if diff := cmp.Diff(w, c.Routes[i].Breaker); diff != "" {
			t.Errorf("routes[%d].Breaker (-want +got):\n%s", i, diff)
		}
	}
	if c.Routes[0].Retry != RetryIdempotent || c.Routes[1].Retry != "" {
		t.Errorf("Retry = %q, %q; want idempotent, empty", c.Routes[0].Retry, c.Routes[1].Retry)
	}
	// Without a ratio, window and min_requests stay 0.
	c, err = Parse([]byte(route("routing_key: k")), apiDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Routes[0].Breaker; b.Window != 0 || b.MinRequests != 0 || b.FailureRatio != 0 {
		t.Errorf("Breaker without ratio = %+v; want no window", b)
	}
}
