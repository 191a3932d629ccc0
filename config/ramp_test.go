package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/figway/figway/gateway"
)

func TestRampRules(t *testing.T) {
	dir := apiDir(t)
	ok := "routing_key: k, sticky_by: x-user, ramp: {steps: [1, 5, 25, 50, 100], every: 2s, gate: {min_calls: 20, max_error_rate: 0.5%, max_p99: 250ms, max_p99_vs_legacy: 1.5}, on_breach: zero}"
	tests := []struct {
		name string
		file string
		want []string
	}{
		{"valid", route(ok), nil},
		{"shadowed legacy side", route("routing_key: k, shadow: {percent: 50}, compare: true, ramp: {steps: [10, 100], gate: {max_shadow_mismatch: 0.1%}}"), nil},
		{"inherited from defaults", withLegacy + "defaults: {ramp: {steps: [5, 100], every: 1m}}\nroutes:\n  - {method: " + get + ", routing_key: k, ramp: {every: 2s}}\n  - {method: acme.v1.OrderService/ListOrders, to: legacy}\n", nil},
		{"steps not increasing", route("routing_key: k, ramp: {steps: [1, 25, 5, 100]}"), []string{
			"routes[0].ramp.steps[2] (line 5): steps must increase: 5 comes after 25"}},
		{"last step not 100", route("routing_key: k, ramp: {steps: [1, 50]}"), []string{
			"routes[0].ramp.steps (line 5): the last step must be 100 (the ramp is done when every call goes to the broker), not 50"}},
		{"step out of range", route("routing_key: k, ramp: {steps: [0, 100]}"), []string{
			"routes[0].ramp.steps[0] (line 5): must be from 1 to 100 (percent of calls to the broker), not 0"}},
		{"no steps", route("routing_key: k, ramp: {every: 1m}"), []string{
			"routes[0].ramp.steps (line 5): required: the percentages of calls sent to the broker, step by step, such as [1, 5, 25, 50, 100]"}},
		{"every too short", route("routing_key: k, ramp: {steps: [100], every: 100ms}"), []string{
			"routes[0].ramp.every (line 5): must be at least 1s, not 100ms"}},
		{"share as a bare number", route("routing_key: k, ramp: {steps: [100], gate: {max_error_rate: 5}}"), []string{
			"routes[0].ramp.gate.max_error_rate (line 5): must be a fraction from 0 to 1, not 5 (write 5% for a percentage)"}},
		{"share not a percentage", route("routing_key: k, ramp: {steps: [100], gate: {max_error_rate: lots}}"), []string{
			`routes[0].ramp.gate.max_error_rate (line 5): invalid share "lots": want a percentage such as 0.5% (of broker-side calls that fail)`}},
		{"unknown gate key", route("routing_key: k, ramp: {steps: [100], gate: {max_p95: 1s}}"), []string{
			`routes[0].ramp.gate.max_p95 (line 5): unknown field (did you mean "max_p99"?)`}},
		{"unknown on_breach", route("routing_key: k, ramp: {steps: [100], on_breach: panic}"), []string{
			`routes[0].ramp.on_breach (line 5): unknown value "panic"; want rollback, hold or zero`}},
		{"ratio not positive", route("routing_key: k, ramp: {steps: [100], gate: {max_p99_vs_legacy: 0}}"), []string{
			"routes[0].ramp.gate.max_p99_vs_legacy (line 5): must be above 0 and at most 1000, not 0"}},
		{"mismatch gate without compare", route("routing_key: k, ramp: {steps: [100], gate: {max_shadow_mismatch: 1%}}"), []string{
			"routes[0].ramp.gate.max_shadow_mismatch (line 5): judges the comparison of shadow copies of the calls the step leaves to legacy: set shadow: true (or {percent: N}) and compare: true"}},
		{"with weight", route("routing_key: k, weight: 10, ramp: {steps: [100]}"), []string{
			"routes[0].weight (line 5): a ramp sets the weight step by step: leave weight out, or leave ramp out"}},
		{"on a legacy route", route("to: legacy, ramp: {steps: [100]}"), []string{
			"routes[0].ramp (line 5): a ramp moves a broker route's calls from legacy to the broker; this route sends every call to legacy (set to: broker)"}},
		{"without legacy.grpc", base + "routes:\n  - {method: " + get + ", routing_key: k, ramp: {steps: [100]}}\n", []string{
			"routes[0].ramp (line 4): a ramp sends the calls its step leaves to legacy: set legacy.grpc"}},
		{"on a streaming method", withLegacy + "routes:\n  - {method: acme.v1.OrderService/WatchOrders, routing_key: k, ramp: {steps: [100]}}\n", []string{
			"routes[0].ramp (line 5): a ramp is for unary methods; acme.v1.OrderService/WatchOrders is server-streaming"}},
		{"shadow on a broker route without ramp", route("routing_key: k, shadow: true"), []string{
			"routes[0].shadow (line 5): only a route with to: legacy, or a ramp's legacy side, can shadow"}},
		{"ramp stream amq.", withLegacy + "server: {ramp_stream: amq.ramps}\n", []string{
			`server.ramp_stream (line 4): "amq.ramps" starts with amq., RabbitMQ's reserved prefix`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.file), dir)
			checkProblems(t, "Parse("+quote(tt.file)+")", err, tt.want)
		})
	}
}

func TestRampDefaults(t *testing.T) {
	dir := apiDir(t)
	file := withLegacy + "defaults: {ramp: {steps: [5, 100], gate: {max_p99: 1s}}}\nroutes:\n" +
		"  - {method: " + get + ", routing_key: k, ramp: {every: 2s, gate: {min_calls: 7}}}\n" +
		"  - {method: acme.v1.OrderService/PlaceOrder, routing_key: k, weight: 10}\n" +
		"  - {method: acme.v1.OrderService/ListOrders, to: legacy}\n"
	c, err := Parse([]byte(file), dir)
	if err != nil {
		t.Fatal(err)
	}
	rp := c.Routes[0].Ramp
	if rp == nil || len(rp.Steps) != 2 || rp.Every != 2*time.Second || rp.Gate.MinCalls != 7 || rp.Gate.MaxP99 != time.Second || rp.OnBreach != gateway.BreachRollback {
		t.Errorf("GetOrder's ramp = %+v; want defaults' steps and p99, its own every and min_calls, on_breach rollback", rp)
	}
	if c.Routes[1].Ramp != nil || c.Routes[2].Ramp != nil {
		t.Errorf("a weighted route and a legacy route took defaults' ramp: %+v, %+v", c.Routes[1].Ramp, c.Routes[2].Ramp)
	}
	if c.RampStream() != "figway.ramps" {
		t.Errorf("RampStream() = %q; want figway.ramps", c.RampStream())
	}
	def := route("routing_key: k, ramp: {steps: [100]}")
	c, err = Parse([]byte(def), dir)
	if err != nil {
		t.Fatal(err)
	}
	if rp := c.Routes[0].Ramp; rp.Every != 10*time.Minute || rp.Gate.MinCalls != 100 || rp.Gate.MaxErrorRate != nil {
		t.Errorf("ramp defaults = %+v; want every 10m, min_calls 100, no error rate judged", rp)
	}
}

func TestAdminTokenFile(t *testing.T) {
	dir := apiDir(t)
	tok := filepath.Join(dir, "admin.token")
	os.WriteFile(tok, []byte("0123456789abcdef0123\n"), 0o600)
	short := filepath.Join(dir, "short.token")
	os.WriteFile(short, []byte("abc"), 0o600)
	c, err := Parse([]byte(base+"server: {admin_token_file: admin.token}\n"), dir)
	if err != nil || string(c.Server.AdminToken) != "0123456789abcdef0123" {
		t.Fatalf("admin token = %q, %v", c.Server.AdminToken, err)
	}
	_, err = Parse([]byte(base+"server: {admin_token_file: short.token}\n"), dir)
	checkProblems(t, "Parse(short token)", err, []string{"server.admin_token_file (line 3): the token is 3 bytes; want at least 16"})
}
