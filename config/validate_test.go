package config

import (
	"strings"
	"testing"
)

// Headers of the test files: a broker, and with legacy upstreams as well.
const (
	base       = "descriptors: [api.binpb]\nbroker: {url: \"amqp://guest:s3cret@localhost:5672/\"}\n"
	withLegacy = base + "legacy: {grpc: \"127.0.0.1:50051\", http: \"http://127.0.0.1:8000\"}\n"
	get        = "acme.v1.OrderService/GetOrder"
)

// route returns withLegacy and one route of GetOrder with the given
// settings, a flow mapping's contents.
func route(settings string) string {
	return withLegacy + "routes:\n  - {method: " + get + ", " + settings + "}\n"
}

func TestParseRules(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // one substring per problem, in order; nil: valid
	}{
		// YAML and its structure.
		{"syntax error", base + "routes: [\n", []string{"line 3: YAML syntax:"}},
		{"two documents", base + "---\n" + base, []string{"line 3: a routes file holds one YAML document"}},
		{"not a mapping", "- a\n- b\n", []string{"line 1: a routes file is a mapping of server, descriptors"}},
		{"nested too deep", base + "x-deep: " + strings.Repeat("[", 65) + strings.Repeat("]", 65) + "\n", []string{"line 3: [ and { nested deeper than 64 levels"}},
		{"indented too deep", base + "x-deep:\n" + strings.Repeat("  - ", 129) + "x\n", []string{"line 4: nested or indented deeper than 512 levels"}},
		{"nesting in strings and comments", base + "x-a: \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\" # {{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\n", nil},
		{"unknown top key", base + "rotes: []\n", []string{`rotes (line 3): unknown field (did you mean "routes"?)`}},
		{"unknown key, no suggestion", base + "frobnicate: 1\n", []string{
			"frobnicate (line 3): unknown field; known fields are server, descriptors, broker, legacy, defaults, routes and topology"}},
		{"unknown key in server", base + "server: {grpcc: \":1\"}\n", []string{`server.grpcc (line 3): unknown field (did you mean "grpc"?)`}},
		{"unknown key in route", route("routing_key: k, timout: 2s"), []string{`routes[0].timout (line 5): unknown field (did you mean "timeout"?)`}},
		{"unknown key in breaker", route("routing_key: k, breaker: {failure: 2}"), []string{`routes[0].breaker.failure (line 5): unknown field (did you mean "failures"?)`}},
		{"unknown key in http", route("routing_key: k, http: {get: /x, bodyy: '*'}"), []string{`routes[0].http.bodyy (line 5): unknown field (did you mean "body"?)`}},
		{"unknown key in topology item", base + "topology: {queues: [{name: q, durabel: true}]}\n", []string{
			`topology.queues[0].durabel (line 3): unknown field (did you mean "durable"?)`}},
		{"duplicate key", base + "server:\n  grpc: \":1\"\n  grpc: \":2\"\n", []string{"server.grpc (line 5): duplicate key (first on line 4)"}},
		{"string for integer", base + "server: {max_request_bytes: lots}\n", []string{`server.max_request_bytes (line 3): want an integer, not "lots"`}},
		{"float for integer", base + "server: {max_request_bytes: 1.5}\n", []string{`server.max_request_bytes (line 3): want an integer, not 1.5`}},
		{"relative openapi_path", base + "server: {openapi_path: openapi.json}\n", []string{`server.openapi_path (line 3): "openapi.json": want a path starting with "/", or off`}},
		{"list for string", route("routing_key: [a, b]"), []string{"routes[0].routing_key (line 5): want a string, not a list"}},
		{"bool for string", route("routing_key: true"), []string{`routes[0].routing_key (line 5): want a string (quote it to write "true"), not true`}},
		{"mapping for list", base + "routes: {method: x}\n", []string{"routes (line 3): want a list, not a mapping"}},
		{"string for mapping", base + "server: fast\n", []string{`server (line 3): want a mapping, not "fast"`}},
		{"route not a mapping", withLegacy + "routes: [GetOrder]\n", []string{`routes[0] (line 4): want a mapping, not "GetOrder"`}},
		{"empty route", withLegacy + "routes:\n  -\n", []string{"routes[0] (line 5): want a mapping, not null"}},
		{"null is absent", base + "legacy:\nserver:\n  grpc:\ndefaults: {timeout: ~}\n", nil},
		{"number as string", route("routing_key: 42"), nil},
		{"anchors and merge keys", withLegacy + `
x-common: &common {routing_key: shared, timeout: 1s}
routes:
  - {<<: *common, method: acme.v1.OrderService/GetOrder}
  - <<: *common
    method: acme.v1.OrderService/PlaceOrder
    routing_key: own
`, nil},
		{"extension keys only at the top", base + "x-a: 1\nserver: {x-b: 1}\n", []string{`server.x-b (line 4): unknown field`}},
		{"merged unknown key", withLegacy + "routes:\n  - &r {method: " + get + ", routing_key: k}\n  - {<<: *r, method: acme.v1.OrderService/PlaceOrder, exchang: x}\n",
			[]string{`routes[1].exchang (line 6): unknown field (did you mean "exchange"?)`}},
		{"unknown alias", base + "server: *nope\n", []string{"server (line 3): alias *nope names no anchor"}},
		{"alias bomb", base + `a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
`, []string{"a (line 3): unknown field", "b (line 4): unknown field", "c (line 5): unknown field", "d (line 6): unknown field",
			"e[4] (line 7): aliases expand to more than 65536 values", "e (line 7): unknown field", "f (line 8): unknown field"}},

		// Durations.
		{"duration", route("routing_key: k, timeout: 1500ms"), nil},
		{"bad duration", route("routing_key: k, timeout: 5x"), []string{`routes[0].timeout (line 5): invalid duration "5x": want Go syntax such as 1500ms, 2s or 1m30s`}},
		{"duration without unit", route("routing_key: k, timeout: 5"), []string{"routes[0].timeout (line 5): invalid duration 5: want a number with a unit, such as 5s"}},
		{"zero duration", base + "defaults: {timeout: 0s}\n", []string{"defaults.timeout (line 3): must be positive, not 0s (leave the key out for the default)"}},
		{"negative duration", base + "broker2: 1\n" + "server: {shutdown_grace: -1s}\n", []string{"broker2 (line 3): unknown field", "server.shutdown_grace (line 4): must be positive, not -1s"}},
		{"bad breaker duration", base + "defaults: {breaker: {open_for: soon}}\n", []string{`defaults.breaker.open_for (line 3): invalid duration "soon"`}},
		{"bad heartbeat", "descriptors: [api.binpb]\nbroker: {url: \"amqp://h\", heartbeat: 1d}\n", []string{`broker.heartbeat (line 2): invalid duration "1d"`}},

		// Enums.
		{"to", route("to: brokr"), []string{`routes[0].to (line 5): unknown value "brokr"; want broker or legacy`}},
		{"pattern", route("routing_key: k, pattern: request"), []string{`routes[0].pattern (line 5): unknown value "request"; want rpc or event`}},
		{"encoding", route("routing_key: k, encoding: xml"), []string{`routes[0].encoding (line 5): unknown value "xml"; want protobuf or json`}},
		{"fallback", route("routing_key: k, fallback: broker"), []string{`routes[0].fallback (line 5): unknown value "broker"; want legacy`}},
		{"reply", "descriptors: [api.binpb]\nbroker: {url: \"amqp://h\", reply: direct-reply}\n", []string{`broker.reply (line 2): unknown value "direct-reply"; want direct or queue`}},
		{"exchange type", base + "topology: {exchanges: [{name: x, type: Topic}]}\n", []string{`topology.exchanges[0].type (line 3): unknown value "Topic"; want direct, topic, fanout or headers`}},
		{"queue type", base + "topology: {queues: [{name: q, type: stream}]}\n", []string{`topology.queues[0].type (line 3): unknown value "stream"; want classic or quorum`}},

		// Methods.
		{"method missing", withLegacy + "routes: [{routing_key: k}]\n", []string{"routes[0].method (line 4): required: the full gRPC method name"}},
		{"method syntax", route("routing_key: k, method2: x") + "  - {method: OrderService.GetOrder, routing_key: k}\n", []string{
			`routes[0].method2 (line 5): unknown field`, `routes[1].method (line 6): "OrderService.GetOrder" is not a method name; want package.Service/Method`}},
		{"method with slash", withLegacy + "routes: [{method: /" + get + ", routing_key: k}]\n", []string{"want package.Service/Method (without the leading slash)"}},
		{"method typo", withLegacy + "routes: [{method: acme.v1.OrderService/GetOrdr, routing_key: k}]\n", []string{
			"routes[0].method (line 4): acme.v1.OrderService/GetOrdr not found in descriptors (did you mean acme.v1.OrderService/GetOrder?)"}},
		{"service unknown", withLegacy + "routes: [{method: billing.v1.Invoices/Get, routing_key: k}]\n", []string{
			"routes[0].method (line 4): billing.v1.Invoices/Get not found in descriptors"}},
		{"server-streaming", withLegacy + "routes: [{method: acme.v1.OrderService/WatchOrders, routing_key: k}]\n", nil},
		{"server-streaming canary", withLegacy + "routes: [{method: acme.v1.OrderService/WatchOrders, routing_key: k, weight: 10, pin_by: x-side}]\n", nil},
		{"server-streaming event", withLegacy + "routes: [{method: acme.v1.OrderService/WatchOrders, routing_key: k, pattern: event}]\n", []string{
			"routes[0].pattern (line 4): acme.v1.OrderService/WatchOrders is server-streaming: its worker answers with a stream; leave pattern out or set it to rpc"}},
		{"server-streaming fallback", withLegacy + "routes: [{method: acme.v1.OrderService/WatchOrders, routing_key: k, fallback: legacy}]\n", []string{
			"routes[0].fallback (line 4): acme.v1.OrderService/WatchOrders is server-streaming: fallback: legacy is for unary routes"}},
		{"server-streaming shadowed", withLegacy + "routes: [{method: acme.v1.OrderService/WatchOrders, to: legacy, shadow: true, routing_key: k}]\n", []string{
			"routes[0].shadow (line 4): acme.v1.OrderService/WatchOrders is server-streaming: its calls cannot be shadowed; migrate it with weight or pin_by on a broker route"}},
		{"client-streaming", withLegacy + "routes: [{method: acme.v1.OrderService/UploadOrders, routing_key: k}]\n", []string{"UploadOrders is client-streaming; only unary and server-streaming methods can be bridged"}},
		{"bidi-streaming", withLegacy + "routes: [{method: acme.v1.OrderService/Chat, routing_key: k}]\n", []string{"Chat is bidirectional-streaming; only unary"}},
		{"streaming to legacy", withLegacy + "routes: [{method: acme.v1.OrderService/Chat, to: legacy}]\n", nil},
		{"streaming shadowed", withLegacy + "routes: [{method: acme.v1.OrderService/Chat, to: legacy, shadow: true, routing_key: k}]\n", []string{
			"routes[0].shadow (line 4): acme.v1.OrderService/Chat is bidirectional-streaming: its calls cannot be shadowed"}},
		{"method twice", route("routing_key: a") + "  - {method: " + get + ", to: legacy}\n", []string{
			"routes[1].method (line 6): acme.v1.OrderService/GetOrder already has a route, routes[0]; a method may have one only"}},

		// Where a route sends its calls.
		{"broker needs routing key", route("exchange: orders"), []string{"routes[0].routing_key (line 5): required when to is broker"}},
		{"legacy needs upstream", base + "routes: [{method: " + get + ", to: legacy}]\n", []string{
			"routes[0].to (line 3): to: legacy needs a legacy upstream; set legacy.grpc or legacy.http"}},
		{"legacy grpc only", base + "legacy: {grpc: \"h:1\"}\nroutes: [{method: " + get + ", to: legacy}]\n", nil},
		{"legacy with broker settings", route("to: legacy, exchange: x, routing_key: k, queue: q, pattern: rpc, encoding: json, wire: {cloudevents: always}"), []string{
			"routes[0].exchange (line 5): only for routes that publish: set to: broker, or shadow: true",
			"routes[0].routing_key (line 5): only for routes that publish", "routes[0].queue (line 5): only for routes that publish",
			"routes[0].pattern (line 5): only for routes that publish", "routes[0].encoding (line 5): only for routes that publish",
			"routes[0].wire (line 5): only for routes that publish"}},
		{"queue", route("exchange: x, routing_key: k, queue: q"), nil},
		{"wire", route("routing_key: k, wire: {cloudevents: always}"), nil},
		{"wire: bad cloudevents", route("routing_key: k, wire: {cloudevents: rpc}"), []string{
			`routes[0].wire.cloudevents (line 5): unknown value "rpc"; want events or always`}},
		{"wire: unknown key", base + "defaults: {wire: {cloud_events: always}}\n", []string{
			`defaults.wire.cloud_events (line 3): unknown field (did you mean "cloudevents"?)`}},
		{"shadow", route("to: legacy, shadow: true, routing_key: k, exchange: x, encoding: json"), nil},
		{"shadow needs routing key", route("to: legacy, shadow: true"), []string{"routes[0].routing_key (line 5): required with shadow: true"}},
		{"shadow on broker", route("routing_key: k, shadow: true"), []string{"routes[0].shadow (line 5): only a route with to: legacy, or a ramp's legacy side, can shadow"}},
		{"shadow waits", route("to: legacy, shadow: true, routing_key: k, pattern: rpc"), []string{
			"routes[0].pattern (line 5): a shadow copy is an event that nobody waits for"}},
		{"server json", base + "server: {json: {proto_names: true, emit_unpopulated: false, discard_unknown: true}}\n", nil},
		{"server json unknown key", base + "server: {json: {proto_name: true}}\n", []string{`server.json.proto_name (line 3): unknown field (did you mean "proto_names"?)`}},
		{"server json not bool", base + "server: {json: {discard_unknown: 1}}\n", []string{`server.json.discard_unknown (line 3): want true or false, not 1`}},
		{"shadow compared", route("to: legacy, shadow: true, routing_key: k, compare: true, ignore_fields: [status]"), nil},
		{"compared shadow is rpc", route("to: legacy, shadow: true, routing_key: k, compare: true, pattern: event"), []string{
			"routes[0].pattern (line 5): a compared shadow copy waits for its reply"}},
		{"compare needs shadow", route("routing_key: k, compare: true"), []string{"routes[0].compare (line 5): compare checks a shadow copy's reply"}},
		{"ignore_fields needs compare", route("to: legacy, shadow: true, routing_key: k, ignore_fields: [status]"), []string{
			"routes[0].ignore_fields (line 5): ignore_fields lists fields left out of a shadow comparison"}},
		{"ignore_fields unknown field", route("to: legacy, shadow: true, routing_key: k, compare: true, ignore_fields: [status, nope, id.x]"), []string{
			`routes[0].ignore_fields[1] (line 5): acme.v1.Order has no field "nope"`, `routes[0].ignore_fields[2] (line 5): acme.v1.Order has no field "id.x"`}},
		{"canary", route("routing_key: k, weight: 10, sticky_by: X-User"), nil},
		{"canary weight 0", route("routing_key: k, weight: 0"), nil},
		{"canary weight out of range", route("routing_key: k, weight: 101"), []string{"routes[0].weight (line 5): must be from 0 to 100"}},
		{"canary weight not a number", route("routing_key: k, weight: half"), []string{`routes[0].weight (line 5): want an integer from 0 to 100, not "half"`}},
		{"canary on legacy route", route("to: legacy, weight: 10"), []string{"routes[0].weight (line 5): a canary weight splits the calls of a broker route"}},
		{"canary needs legacy", base + "routes: [{method: " + get + ", routing_key: k, weight: 5}]\n", []string{"routes[0].weight (line 3): a canary sends the rest of the calls to legacy"}},
		{"sticky needs weight", route("routing_key: k, sticky_by: x-user"), []string{"routes[0].sticky_by (line 5): sticky_by keeps a caller on one side"}},
		{"sticky bad header", route("routing_key: k, weight: 5, sticky_by: connection"), []string{"routes[0].sticky_by"}},
		{"shadow not bool", route("to: legacy, shadow: yes, routing_key: k"), []string{`routes[0].shadow (line 5): want true, false or {percent: N}, not "yes"`}},
		{"shadow sample", route("to: legacy, shadow: {percent: 10}, routing_key: k, sticky_by: x-user"), nil},
		{"shadow sample of none", route("to: legacy, shadow: {percent: 0}, routing_key: k"), nil},
		{"shadow sample out of range", route("to: legacy, shadow: {percent: 101}, routing_key: k"), []string{
			"routes[0].shadow.percent (line 5): must be from 0 to 100 (the percentage of calls mirrored), not 101"}},
		{"shadow sample without percent", route("to: legacy, shadow: {}, routing_key: k"), []string{"routes[0].shadow.percent (line 5): required"}},
		{"shadow sample unknown key", route("to: legacy, shadow: {pct: 5}, routing_key: k"), []string{"routes[0].shadow.pct (line 5): unknown field", "routes[0].shadow.percent (line 5): required"}},
		{"sticky on full shadow", route("to: legacy, shadow: true, routing_key: k, sticky_by: x-user"), []string{"routes[0].sticky_by (line 5): sticky_by keeps a caller"}},
		{"pin", route("routing_key: k, weight: 50, pin_by: X-Figway-Pin"), nil},
		{"pin in defaults", base + "defaults: {pin_by: x-pin}\nroutes: [{method: " + get + ", routing_key: k}]\n", nil},
		{"pin bad header", route("routing_key: k, pin_by: grpc-pin"), []string{`routes[0].pin_by (line 5): "grpc-pin" is reserved for gRPC`}},
		{"pin not a string", route("routing_key: k, pin_by: [a]"), []string{"routes[0].pin_by (line 5): want a string"}},
		{"response headers", base + "defaults: {response_headers: [Location, etag]}\nroutes: [{method: " + get + ", routing_key: k, response_headers: [cache-control]}]\n", nil},
		{"response headers bad", route("routing_key: k, response_headers: [content-type, location, Location, figway-x]"), []string{
			`routes[0].response_headers[0] (line 5): "content-type" describes the body`,
			`routes[0].response_headers[2] (line 5): "location" is listed twice`,
			`routes[0].response_headers[3] (line 5): "figway-x" is in figway's own namespace`}},
		{"ignore_metadata", route("to: legacy, shadow: true, routing_key: k, compare: true, ignore_metadata: [date, x-request-id]"), nil},
		{"ignore_metadata needs compare", route("to: legacy, shadow: true, routing_key: k, ignore_metadata: [date]"), []string{
			"routes[0].ignore_metadata (line 5): ignore_metadata lists reply metadata left out"}},
		{"cors", base + "server: {cors: {allow_origins: [\"https://*.example.com\", \"http://localhost:3000\"], allow_headers: [x-tenant-id], expose_headers: [location], allow_credentials: true, max_age: 10m}}\n", nil},
		{"cors any origin", base + "server: {cors: {allow_origins: [\"*\"], allow_headers: [\"*\"]}}\n", nil},
		{"cors bad", base + "server: {cors: {allow_origins: [\"*\", \"example.com\", \"https://*.*.example.com\", \"https://a.example.com/path\"], allow_credentials: true, max_age: 48h, allow_headers: [\"a b\"]}}\n", []string{
			`server.cors.allow_origins[1] (line 3): "example.com" is not an origin`,
			`server.cors.allow_origins[2] (line 3): "https://*.*.example.com" has more than one *`,
			`server.cors.allow_origins[3] (line 3): "https://a.example.com/path" is not an origin`,
			`server.cors.allow_credentials (line 3): allow_credentials with allow_origins "*"`,
			`server.cors.allow_headers[0] (line 3): "a b" is not a header name`,
			"server.cors.max_age (line 3): must be from 0 to 24h, not 48h0m0s"}},
		{"cors needs origins", base + "server: {cors: {max_age: 1m}}\n", []string{"server.cors.allow_origins (line 3): required"}},
		{"fallback needs legacy", base + "routes: [{method: " + get + ", routing_key: k, fallback: legacy}]\n", []string{
			"routes[0].fallback (line 3): fallback: legacy needs a legacy upstream"}},
		{"event with fallback", route("routing_key: k, pattern: event, fallback: legacy"), nil},
		{"fallback on legacy", route("to: legacy, fallback: legacy"), []string{"routes[0].fallback (line 5): a route with to: legacy has nothing to fall back from"}},

		// Broker.
		{"broker missing", "descriptors: [api.binpb]\n", []string{"broker: required"}},
		{"url and urls", "descriptors: [api.binpb]\nbroker: {url: \"amqp://h\", urls: [\"amqp://h\"]}\n", []string{"broker.urls (line 2): set url or urls, not both"}},
		{"no url", "descriptors: [api.binpb]\nbroker: {channels: 2}\n", []string{"broker (line 2): needs url (one amqp:// or amqps:// URL) or urls"}},
		{"empty urls", "descriptors: [api.binpb]\nbroker: {urls: []}\n", []string{"broker.urls (line 2): empty list"}},
		{"url scheme", "descriptors: [api.binpb]\nbroker: {url: \"http://guest:s3cret@h/\"}\n", []string{
			`broker.url (line 2): invalid AMQP URL "http://guest:xxxxx@h/": AMQP scheme must be either 'amqp://' or 'amqps://'`}},
		{"url bad port", "descriptors: [api.binpb]\nbroker:\n  urls:\n    - amqps://h\n    - \"amqp://guest:s3cret@h:port/\"\n", []string{
			`broker.urls[1] (line 5): invalid AMQP URL "amqp://guest:xxxxx@h:port/": invalid port ":port" after host`}},
		{"url password with slash", "descriptors: [api.binpb]\nbroker: {url: \"amqp://guest:s3/cret@h:x/\"}\n", []string{
			`broker.url (line 2): invalid AMQP URL "amqp://guest:xxxxx@h:x/"`}},
		{"url empty", "descriptors: [api.binpb]\nbroker: {url: \"\"}\n", []string{"broker.url (line 2): empty URL"}},
		{"channels zero", "descriptors: [api.binpb]\nbroker: {url: \"amqp://h\", channels: 0}\n", []string{
			"broker.channels (line 2): must be at least 1, not 0 (leave the key out for the default)"}},
		{"channels too many", "descriptors: [api.binpb]\nbroker: {url: \"amqp://h\", channels: 65}\n", []string{"broker.channels (line 2): must be at most 64, not 65"}},

		// Server and legacy addresses.
		{"listen address", base + "server: {grpc: \"localhost\", http: \"h:99999\", admin: \"\"}\n", []string{
			`server.grpc (line 3): want host:port, such as 127.0.0.1:8080, not "localhost"`,
			`server.http (line 3): port "99999" of "h:99999" is not a number from 0 to 65535`,
			"server.admin (line 3): empty address; leave the key out for the default"}},
		{"listen any port", base + "server: {grpc: \"127.0.0.1:0\", http: \":0\", admin: \"[::1]:9090\"}\n", nil},
		{"max request bytes zero", base + "server: {max_request_bytes: 0}\n", []string{"server.max_request_bytes (line 3): must be at least 1, not 0"}},
		{"max request bytes too large", base + "server: {max_request_bytes: 134217729}\n", []string{
			"server.max_request_bytes (line 3): must be at most 134217728, not 134217729 (128 MiB), RabbitMQ's default max_message_size: the broker would refuse a larger request"}},
		{"max request bytes huge", base + "server: {max_request_bytes: 99999999999999999999}\n", []string{
			"server.max_request_bytes (line 3): must be at most 134217728, not 99999999999999999999"}},
		{"legacy http relative", base + "legacy: {http: \"127.0.0.1:8000\"}\n", []string{
			`legacy.http (line 3): want an absolute http:// or https:// URL, such as http://127.0.0.1:8000, not "127.0.0.1:8000"`}},
		{"legacy http scheme", base + "legacy: {http: \"ftp://user:s3cret@legacy/\"}\n", []string{
			`legacy.http (line 3): want an absolute http:// or https:// URL, such as http://127.0.0.1:8000, not "ftp://user:xxxxx@legacy/"`}},
		{"legacy http no host", base + "legacy: {http: \"http:///x\"}\n", []string{`legacy.http (line 3): URL "http:///x" has no host`}},
		{"legacy grpc", base + "legacy: {grpc: \":50051\"}\n", []string{`legacy.grpc (line 3): want host:port, such as 127.0.0.1:50051, not ":50051": the host is missing`}},
		{"legacy grpc port 0", base + "legacy: {grpc: \"h:0\"}\n", []string{`legacy.grpc (line 3): port "0" of "h:0" is not a number from 1 to 65535`}},

		// Limits.
		{"max in flight zero", route("routing_key: k, max_in_flight: 0"), []string{"routes[0].max_in_flight (line 5): must be at least 1, not 0"}},
		{"breaker negative", base + "defaults: {breaker: {failures: -1, half_open_requests: 0}}\n", []string{
			"defaults.breaker.failures (line 3): must be at least 1, not -1", "defaults.breaker.half_open_requests (line 3): must be at least 1, not 0"}},

		// Forwarded headers.
		{"headers", base + "defaults: {forward_headers: [X-Tenant-ID, x-request-id, authorization]}\n", nil},
		{"forbidden headers", base + `defaults:
  forward_headers:
    - connection
    - TE
    - proxy-authorization
    - ":authority"
    - cc
    - bcc
    - grpc-timeout
    - figway-deadline
    - x tenant
    - ""
    - x-a
    - X-A
    - [a]
`, []string{
			`defaults.forward_headers[0] (line 5): "connection" is a hop-by-hop header`,
			`defaults.forward_headers[1] (line 6): "te" is a hop-by-hop header`,
			`defaults.forward_headers[2] (line 7): "proxy-authorization" is a hop-by-hop header`,
			`defaults.forward_headers[3] (line 8): ":authority" is an HTTP/2 pseudo-header`,
			`defaults.forward_headers[4] (line 9): "cc" is a RabbitMQ sender-selected distribution header`,
			`defaults.forward_headers[5] (line 10): "bcc" is a RabbitMQ sender-selected distribution header`,
			`defaults.forward_headers[6] (line 11): "grpc-timeout" is reserved for gRPC's own protocol`,
			`defaults.forward_headers[7] (line 12): "figway-deadline" is in figway's own namespace`,
			`defaults.forward_headers[8] (line 13): "x tenant" is not a header name: RFC 7230 allows letters, digits and`,
			`defaults.forward_headers[9] (line 14): empty header name`,
			`defaults.forward_headers[11] (line 16): "x-a" is listed twice (see defaults.forward_headers[10])`,
			`defaults.forward_headers[12] (line 17): want a string, not a list`,
		}},
		{"header list not a list", route("routing_key: k, forward_headers: x-tenant-id"), []string{
			`routes[0].forward_headers (line 5): want a list, not "x-tenant-id"`}},

		// HTTP rules.
		{"http", route("routing_key: k, http: {post: \"/v1/orders/{order_id}:get\", body: '*'}"), nil},
		{"http nested variable", route("routing_key: k, http: {get: \"/v1/{filter.status=statuses/*}\"}"), nil},
		{"http no verb", route("routing_key: k, http: {body: '*'}"), []string{
			"routes[0].http (line 5): needs one of get, put, post, delete, patch or custom"}},
		{"http two verbs", route("routing_key: k, http: {get: /a, delete: /a}"), []string{
			"routes[0].http.delete (line 5): a rule binds one verb, and this one has get and delete"}},
		{"http relative path", route("routing_key: k, http: {get: v1/orders}"), []string{
			`routes[0].http.get (line 5): path template "v1/orders" must start with "/"`}},
		{"http unknown variable", route("routing_key: k, http: {get: \"/v1/{order_idd}\"}"), []string{
			`routes[0].http.get (line 5): path variable {order_idd}: acme.v1.GetOrderRequest has no field "order_idd" (did you mean "order_id"?)`}},
		{"http variable through list", route("routing_key: k, http: {get: \"/v1/{tags.x}\"}"), []string{
			`routes[0].http.get (line 5): path variable {tags.x}: acme.v1.GetOrderRequest.tags is not a singular message field`}},
		{"http unbalanced", route("routing_key: k, http: {get: \"/v1/{order_id\"}"), []string{
			`routes[0].http.get (line 5): path template "/v1/{order_id": "{" without "}"`}},
		{"http body field", route("routing_key: k, http: {post: /v1, body: orderid}"), []string{
			`routes[0].http.body (line 5): want "*", a field of the request, or nothing: acme.v1.GetOrderRequest has no field "orderid" (did you mean "order_id"?)`}},
		{"http response body", route("routing_key: k, http: {get: /v1, response_body: state}"), []string{
			`routes[0].http.response_body (line 5): want a field of the response, or nothing: acme.v1.Order has no field "state"`}},
		{"http custom", route("routing_key: k, http: {custom: {kind: HEAD, path: /v1}}"), nil},
		{"http custom incomplete", route("routing_key: k, http: {custom: {path: v1}}"), []string{
			"routes[0].http.custom.kind (line 5): required: the HTTP method, such as HEAD",
			`routes[0].http.custom.path (line 5): path template "v1" must start with "/"`}},

		// Topology.
		{"topology", base + `topology:
  exchanges: [{name: orders, type: topic}]
  queues:
    - {name: a, bind: {exchange: orders, key: a}}
    - {name: b, bind: [{exchange: orders}, {exchange: amq.fanout}]}
`, nil},
		{"topology names", base + `topology:
  exchanges:
    - {type: topic}
    - {name: amq.orders, type: topic}
    - {name: orders, type: topic}
    - {name: orders, type: fanout}
    - {name: audit}
  queues:
    - {name: ""}
    - {name: q}
    - {name: q}
    - {name: amq.q}
`, []string{
			"topology.exchanges[0].name (line 5): required: the exchange's name",
			`topology.exchanges[1].name (line 6): "amq.orders": RabbitMQ reserves names that start with "amq."`,
			`topology.exchanges[3].name (line 8): exchange "orders" is declared twice (first at topology.exchanges[2])`,
			"topology.exchanges[4].type (line 9): required: direct, topic, fanout or headers",
			"topology.queues[0].name (line 11): required: the queue's name",
			`topology.queues[2].name (line 13): queue "q" is declared twice (first at topology.queues[1])`,
			`topology.queues[3].name (line 14): "amq.q": RabbitMQ reserves names`,
		}},
		{"dead letters", base + `topology:
  exchanges: [{name: orders, type: topic}, {name: orders.dlx, type: fanout}]
  queues:
    - {name: a, type: quorum, delivery_limit: 5, dead_letter_exchange: orders.dlx}
    - {name: b, type: quorum, delivery_limit: 3, dead_letter_exchange: "", dead_letter_routing_key: b.dead}
    - {name: c, dead_letter_exchange: amq.fanout, dead_letter_routing_key: dead}
    - {name: a.dead, bind: {exchange: orders.dlx}}
    - {name: b.dead}
`, nil},
		{"dead letters refused", base + `topology:
  exchanges: [{name: orders.dlx, type: fanout}]
  queues:
    - {name: a, delivery_limit: 5}
    - {name: b, type: quorum, delivery_limit: 0}
    - {name: c, type: quorum, dead_letter_exchange: orders.dlq}
    - {name: d, type: quorum, dead_letter_exchange: ""}
    - {name: e, type: quorum, dead_letter_routing_key: dead}
    - {name: f, type: quorum, delivery_limit: 5, dead_letter_exchange: orders.dlx, arguments: {x-delivery-limit: 5, x-dead-letter-exchange: x}}
    - {name: g, type: quorum, delivery_limit: many}
`, []string{
			"topology.queues[0].delivery_limit (line 6): only quorum queues count deliveries; set type: quorum",
			"topology.queues[1].delivery_limit (line 7): must be at least 1, not 0",
			`topology.queues[2].dead_letter_exchange (line 8): exchange "orders.dlq" is not declared in topology.exchanges nor one of RabbitMQ's predefined amq.* exchanges (did you mean "orders.dlx"?)`,
			"topology.queues[3].dead_letter_exchange (line 9): the default exchange routes by routing key: name the dead-letter queue in dead_letter_routing_key",
			"topology.queues[4].dead_letter_routing_key (line 10): needs dead_letter_exchange",
			"topology.queues[5].arguments.x-delivery-limit (line 11): set by delivery_limit as well; keep one",
			"topology.queues[5].arguments.x-dead-letter-exchange (line 11): set by dead_letter_exchange as well; keep one",
			`topology.queues[6].delivery_limit (line 12): want an integer, not "many"`,
		}},
		{"topology bindings", base + `topology:
  exchanges: [{name: orders, type: topic}]
  queues:
    - name: q
      bind:
        - {exchange: orders}
        - {exchange: order}
        - {key: k}
        - nope
`, []string{
			`topology.queues[0].bind[1].exchange (line 9): exchange "order" is not declared in topology.exchanges nor one of RabbitMQ's predefined amq.* exchanges (did you mean "orders"?)`,
			"topology.queues[0].bind[2].exchange (line 10): required: the exchange to bind to",
			`topology.queues[0].bind[3] (line 11): want a mapping, not "nope"`,
		}},
		{"quorum durable", base + "topology: {queues: [{name: q, type: quorum, durable: false}]}\n", []string{
			"topology.queues[0].durable (line 3): quorum queues are always durable"}},
		{"queue arguments", base + "topology: {queues: [{name: q, arguments: {x-queue-type: quorum, x-max-length: 18446744073709551615}}]}\n", []string{
			"topology.queues[0].arguments.x-queue-type (line 3): set the queue's type instead",
			"topology.queues[0].arguments.x-max-length (line 3): 18446744073709551615 does not fit the 64-bit signed integer of an AMQP table",
		}},
	}
	dir := apiDir(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.file), dir)
			checkProblems(t, "Parse("+quote(tt.file)+")", err, tt.want)
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Parse(%q) = %v; want no password in any message", tt.file, err)
			}
		})
	}
}

func quote(s string) string { return strings.ReplaceAll(s, "\n", `\n`) }
