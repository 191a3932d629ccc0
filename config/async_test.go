package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseAsyncRules(t *testing.T) {
	dir := apiDir(t)
	os.WriteFile(filepath.Join(dir, "ops.key"), []byte("0123456789abcdef0123\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "short.key"), []byte("short\n"), 0o600)
	tests := []struct {
		name string
		file string
		want []string // one substring per problem, in order; nil: valid
	}{
		{"async", route("routing_key: k, async: {after: 1s, keep: 1h, timeout: 30m}"), nil},
		{"async empty", route("routing_key: k, async: {}"), nil},
		{"owner_by with key", "server: {operations_key_file: ops.key}\n" + route("routing_key: k, async: {owner_by: Authorization}"), nil},
		{"owner_by without key", route("routing_key: k, async: {owner_by: authorization}"), []string{
			"routes[0].async.owner_by (line 5): needs server.operations_key_file"}},
		{"short key", "server: {operations_key_file: short.key}\n" + route("routing_key: k, async: {owner_by: x-tenant}"), []string{
			"server.operations_key_file (line 1): the key is 5 bytes; want at least 16"}},
		{"missing key file", "server: {operations_key_file: nope.key}\n" + base, []string{
			"server.operations_key_file (line 1): open"}},
		{"after past timeout", route("routing_key: k, async: {after: 1m, timeout: 30s}"), []string{
			"routes[0].async.after (line 5): 1m0s is past async.timeout 30s"}},
		{"async on event", route("routing_key: k, pattern: event, async: {}"), []string{
			"routes[0].async (line 5): only an rpc route to the broker can answer asynchronously"}},
		{"async on legacy", route("to: legacy, async: {}"), []string{
			"routes[0].async (line 5): only an rpc route to the broker"}},
		{"async unknown key", route("routing_key: k, async: {afterr: 1s}"), []string{
			`routes[0].async.afterr (line 5): unknown field (did you mean "after"?)`}},
		{"bad operations_path", "server: {operations_path: v1/ops/}\n" + base, []string{
			`server.operations_path (line 1): "v1/ops/" is not a path`}},
		{"defaults async skips events", base + "defaults: {async: {after: 3s}}\n" +
			"routes:\n  - {method: " + get + ", routing_key: k, pattern: event}\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.file), dir)
			checkProblems(t, "Parse("+quote(tt.file)+")", err, tt.want)
		})
	}
}

func TestAsyncDefaults(t *testing.T) {
	dir := apiDir(t)
	c, err := Parse([]byte(base+"defaults: {async: {keep: 1h}}\nroutes:\n"+
		"  - {method: "+get+", routing_key: k}\n"+
		"  - {method: acme.v1.OrderService/ListOrders, routing_key: l, async: {after: 5s}}\n"+
		"  - {method: acme.v1.OrderService/PlaceOrder, routing_key: p, pattern: event}\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []*Async{
		{After: 2 * time.Second, Keep: time.Hour, Timeout: 10 * time.Minute},
		{After: 5 * time.Second, Keep: time.Hour, Timeout: 10 * time.Minute},
		nil,
	}
	for i, w := range want {
		got := c.Routes[i].Async
		if (got == nil) != (w == nil) || got != nil && *got != *w {
			t.Errorf("routes[%d].Async = %v; want %v", i, got, w)
		}
	}
	if got := c.AsyncRetention(); got != time.Hour+10*time.Minute {
		t.Errorf("AsyncRetention() = %v; want 1h10m", got)
	}
	o := c.Server.Operations
	if o.Path != "/v1/operations" || o.Stream != "figway.operations" || o.Max != 100_000 || o.MaxBytes != 256<<20 {
		t.Errorf("Server.Operations = %+v; want the defaults", o)
	}
}
