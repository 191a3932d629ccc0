package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/figway/figway/gateway"
)

const fullFile = `# Every key of the routes file.
server:
  grpc: 0.0.0.0:7080
  http: :7081
  admin: 127.0.0.1:7090
  max_request_bytes: 1048576
  shutdown_grace: 30s
descriptors: [api.binpb]
broker:
  urls: [amqp://figway:s3cret@rabbit-1:5672/shop, amqps://rabbit-2/shop]
  reply: queue
  channels: 8
  heartbeat: 10s
  dial_timeout: 2s
  stall_timeout: 4s
legacy:
  grpc: legacy.internal:50051
  http: https://legacy.internal/api
defaults:
  timeout: 3s
  max_in_flight: 100
  breaker: {failures: 3, open_for: 20s, half_open_requests: 2}
  forward_headers: [X-Tenant-ID, x-request-id]
  wire: {cloudevents: always}
routes:
  - method: acme.v1.OrderService/GetOrder
    exchange: orders
    routing_key: orders.get
    pattern: rpc
    timeout: 1500ms
    encoding: json
    fallback: legacy
    max_in_flight: 10
    breaker: {failures: 1}
    forward_headers: [authorization]
    http: {get: "/v2/orders/{order_id}", response_body: status}
    wire: {cloudevents: events}
  - method: acme.v1.OrderService/PlaceOrder
    exchange: orders
    routing_key: orders.placed
    pattern: event
    fallback: legacy
    forward_headers: []
    http: {post: /v2/orders, body: order}
  - method: acme.v1.OrderService/ListOrders
    to: legacy
    shadow: true
    routing_key: orders.listed
  - method: acme.v1.OrderService/WatchOrders
    to: legacy
    http: {custom: {kind: HEAD, path: "/v2/orders/{filter.status}"}}
topology:
  exchanges:
    - {name: orders, type: topic}
    - {name: audit, type: fanout, durable: false}
  queues:
    - name: orders.get
      type: quorum
      bind: {exchange: orders, key: orders.get}
    - name: audit.all
      durable: false
      bind:
        - {exchange: audit}
        - {exchange: amq.topic, key: "orders.#"}
      arguments: {x-message-ttl: 60000, x-dead-letter-exchange: audit, x-overflow: reject-publish}
`

func TestLoadFull(t *testing.T) {
	dir := apiDir(t)
	path := writeFile(t, dir, "figway.yaml", fullFile)
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q) = %v; want no error", path, err)
	}
	breaker := func(f int, o time.Duration, h int) Breaker {
		return Breaker{Failures: f, OpenFor: o, HalfOpenRequests: h}
	}
	want := &Config{
		Server: Server{GRPC: "0.0.0.0:7080", HTTP: ":7081", Admin: "127.0.0.1:7090", MaxRequestBytes: 1 << 20, MaxForwardedValueBytes: 8 << 10, MaxForwardedBytes: 32 << 10, MaxHeaderBytes: 64 << 10, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute, ShutdownGrace: 30 * time.Second,
			Operations: Operations{Path: "/v1/operations", Stream: "figway.operations", Max: 100_000, MaxBytes: 256 << 20}, OpenAPIPath: "/openapi.json", RampStream: "figway.ramps"},
		Descriptors: []string{filepath.Join(dir, "api.binpb")},
		Broker: Broker{
			URLs:  []string{"amqp://figway:s3cret@rabbit-1:5672/shop", "amqps://rabbit-2/shop"},
			Reply: ReplyQueue, Channels: 8, Heartbeat: 10 * time.Second, DialTimeout: 2 * time.Second,
			StallTimeout: 4 * time.Second,
		},
		Legacy: Legacy{GRPC: "legacy.internal:50051", HTTP: "https://legacy.internal/api"},
		Defaults: Route{RouteSpec: gateway.RouteSpec{
			Timeout: 3 * time.Second, MaxInFlight: 100, Breaker: breaker(3, 20*time.Second, 2),
			Forward: []string{"x-tenant-id", "x-request-id"},
		}, Wire: Wire{CloudEvents: CloudEventsAlways}},
		Routes: []Route{{RouteSpec: gateway.RouteSpec{
			Method: "acme.v1.OrderService/GetOrder", To: TargetBroker, Exchange: "orders", RoutingKey: "orders.get",
			Pattern: PatternRPC, Timeout: 1500 * time.Millisecond, Encoding: EncodingJSON, Fallback: TargetLegacy,
			MaxInFlight: 10, Breaker: breaker(1, 20*time.Second, 2), Forward: []string{"authorization"},
			HTTP: &HTTPRule{Verb: "GET", Path: "/v2/orders/{order_id}", ResponseBody: "status"},
		}, Wire: Wire{CloudEvents: CloudEventsEvents}}, {RouteSpec: gateway.RouteSpec{
			Method: "acme.v1.OrderService/PlaceOrder", To: TargetBroker, Exchange: "orders", RoutingKey: "orders.placed",
			Pattern: PatternEvent, Timeout: 3 * time.Second, Encoding: EncodingProtobuf, Fallback: TargetLegacy,
			MaxInFlight: 100, Breaker: breaker(3, 20*time.Second, 2), Forward: []string{},
			HTTP: &HTTPRule{Verb: "POST", Path: "/v2/orders", Body: "order"},
		}, Wire: Wire{CloudEvents: CloudEventsAlways}}, {RouteSpec: gateway.RouteSpec{
			Method: "acme.v1.OrderService/ListOrders", To: TargetLegacy, Shadow: true, ShadowPercent: 100, RoutingKey: "orders.listed",
			Pattern: PatternEvent, Timeout: 3 * time.Second, Encoding: EncodingProtobuf,
			MaxInFlight: 100, Breaker: breaker(3, 20*time.Second, 2), Forward: []string{"x-tenant-id", "x-request-id"},
		}, Wire: Wire{CloudEvents: CloudEventsAlways}}, {RouteSpec: gateway.RouteSpec{
			Method: "acme.v1.OrderService/WatchOrders", To: TargetLegacy,
			Timeout: 3 * time.Second, MaxInFlight: 100, Breaker: breaker(3, 20*time.Second, 2),
			Forward: []string{"x-tenant-id", "x-request-id"},
			HTTP:    &HTTPRule{Verb: "HEAD", Path: "/v2/orders/{filter.status}"},
		}}},
		Topology: Topology{
			Exchanges: []Exchange{
				{Name: "orders", Type: "topic", Durable: ptr(true)},
				{Name: "audit", Type: "fanout", Durable: ptr(false)},
			},
			Queues: []Queue{{
				Name: "orders.get", Type: "quorum", Durable: ptr(true),
				Bind: []Binding{{Exchange: "orders", Key: "orders.get"}},
			}, {
				Name: "audit.all", Type: "classic", Durable: ptr(false),
				Bind:      []Binding{{Exchange: "audit"}, {Exchange: "amq.topic", Key: "orders.#"}},
				Arguments: map[string]any{"x-message-ttl": int64(60000), "x-dead-letter-exchange": "audit", "x-overflow": "reject-publish"},
			}},
		},
	}
	opts := cmp.Options{cmpopts.IgnoreFields(Config{}, "Files"), cmpopts.IgnoreFields(gateway.RouteSpec{}, "Desc")}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("Load(%q) mismatch (-want +got):\n%s", path, diff)
	}
	for _, r := range got.Routes {
		if r.Desc == nil || string(r.Desc.FullName()) != strings.ReplaceAll(r.Method, "/", ".") {
			t.Errorf("Load(%q): route %s has Desc %v; want its descriptor", path, r.Method, r.Desc)
		}
	}
	if got.Files == nil || got.Files.NumFiles() != 4 {
		t.Errorf("Load(%q): Files = %v; want the 4 files of api.binpb", path, got.Files)
	}
}

// TestLoadDefaults loads the smallest useful file: everything else is a
// default.
func TestLoadDefaults(t *testing.T) {
	dir := apiDir(t)
	const file = `
descriptors: [api.binpb]
broker: {url: "amqp://localhost"}
routes:
  - {method: acme.v1.OrderService/GetOrder, routing_key: orders.get}
`
	got, err := Parse([]byte(file), dir)
	if err != nil {
		t.Fatalf("Parse(%q) = %v; want no error", file, err)
	}
	dflt := Breaker{Failures: 5, OpenFor: 10 * time.Second, HalfOpenRequests: 1}
	want := &Config{
		Server: Server{GRPC: "127.0.0.1:8080", HTTP: "127.0.0.1:8081", Admin: "127.0.0.1:9090", MaxRequestBytes: 4 << 20, MaxForwardedValueBytes: 8 << 10, MaxForwardedBytes: 32 << 10, MaxHeaderBytes: 64 << 10, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute, ShutdownGrace: 10 * time.Second,
			Operations: Operations{Path: "/v1/operations", Stream: "figway.operations", Max: 100_000, MaxBytes: 256 << 20}, OpenAPIPath: "/openapi.json", RampStream: "figway.ramps"},
		Descriptors: []string{filepath.Join(dir, "api.binpb")},
		Broker:      Broker{URLs: []string{"amqp://localhost"}, Reply: ReplyDirect, Channels: 4, Heartbeat: 2 * time.Second, DialTimeout: 5 * time.Second, StallTimeout: 3 * time.Second},
		Defaults:    Route{RouteSpec: gateway.RouteSpec{Timeout: 5 * time.Second, MaxInFlight: 1024, Breaker: dflt}, Wire: Wire{CloudEvents: CloudEventsEvents}},
		Routes: []Route{{RouteSpec: gateway.RouteSpec{
			Method: "acme.v1.OrderService/GetOrder", To: TargetBroker, RoutingKey: "orders.get", Pattern: PatternRPC,
			Timeout: 5 * time.Second, Encoding: EncodingProtobuf, MaxInFlight: 1024, Breaker: dflt,
		}, Wire: Wire{CloudEvents: CloudEventsEvents}}},
	}
	opts := cmp.Options{cmpopts.IgnoreFields(Config{}, "Files"), cmpopts.IgnoreFields(gateway.RouteSpec{}, "Desc")}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("Parse(%q) mismatch (-want +got):\n%s", file, diff)
	}
	if r, ok := got.Route("/acme.v1.OrderService/GetOrder"); !ok || r != &got.Routes[0] {
		t.Errorf("Route(%q) = %v, %v; want routes[0], true", "/acme.v1.OrderService/GetOrder", r, ok)
	}
	if r, ok := got.Route("acme.v1.OrderService/PlaceOrder"); ok {
		t.Errorf("Route(%q) = %v, %v; want nil, false", "acme.v1.OrderService/PlaceOrder", r, ok)
	}
}

// TestLoadManyProblems checks that one load reports every problem of a
// file, each once, with its path and line.
func TestLoadManyProblems(t *testing.T) {
	dir := apiDir(t)
	const file = `server:
  grpc: localhost
  max_request_bytes: 268435456
descriptors: [api.binpb]
broker:
  url: http://figway:s3cret@rabbit:5672/
  channels: 100
defaults:
  timeout: 5x
routes:
  - method: acme.v1.OrderService/GetOrdr
    routing_key: orders.get
  - method: acme.v1.OrderService/UploadOrders
    routing_key: orders.watch
    timout: 2s
  - method: acme.v1.OrderService/PlaceOrder
    to: legacy
    pattern: event
    forward_headers: [Connection]
  - method: acme.v1.OrderService/ListOrders
    to: brokr
topology:
  queues:
    - {name: q, type: quorum, durable: false, bind: {exchange: nowhere}}
`
	want := []string{
		`server.grpc (line 2): want host:port`,
		`server.max_request_bytes (line 3): must be at most 134217728, not 268435456 (128 MiB), RabbitMQ's default max_message_size`,
		`broker.url (line 6): invalid AMQP URL "http://figway:xxxxx@rabbit:5672/"`,
		`broker.channels (line 7): must be at most 64`,
		`defaults.timeout (line 9): invalid duration "5x"`,
		`routes[0].method (line 11): acme.v1.OrderService/GetOrdr not found in descriptors (did you mean acme.v1.OrderService/GetOrder?)`,
		`routes[1].method (line 13): acme.v1.OrderService/UploadOrders is client-streaming; only unary and server-streaming methods can be bridged to RabbitMQ; use to: legacy`,
		`routes[1].timout (line 15): unknown field (did you mean "timeout"?)`,
		`routes[2].to (line 17): to: legacy needs a legacy upstream`,
		`routes[2].pattern (line 18): only for routes that publish`,
		`routes[2].forward_headers[0] (line 19): "connection" is a hop-by-hop header`,
		`routes[3].to (line 21): unknown value "brokr"; want broker or legacy`,
		`topology.queues[0].durable (line 24): quorum queues are always durable`,
		`topology.queues[0].bind.exchange (line 24): exchange "nowhere" is not declared`,
	}
	path := writeFile(t, dir, "figway.yaml", file)
	_, err := Load(path)
	checkProblems(t, "Load("+path+")", err, want)
	if err != nil && strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Load(%q) = %v; want no password in the message", path, err)
	}
}

// checkProblems checks that err holds one problem per want, in order,
// each containing the want string.
func checkProblems(t *testing.T, call string, err error, want []string) {
	t.Helper()
	got := fieldErrors(t, err)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = strings.Contains(got[i].Error(), want[i])
	}
	if !ok {
		var lines []string
		for _, fe := range got {
			lines = append(lines, "\t"+fe.Error())
		}
		t.Errorf("%s = %d problems:\n%s\nwant %d:\n\t%s", call, len(got), strings.Join(lines, "\n"), len(want), strings.Join(want, "\n\t"))
	}
}
