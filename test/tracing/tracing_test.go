package tracing_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/jaeger"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/prom"
)

// spanWant is one span a trace must hold: found by service, kind and
// name, a child of the span wanted at parent (-1: of none in the trace),
// with these tags and at least these events.
type spanWant struct {
	service, kind, name string
	parent              int
	tags                map[string]string
	events              []string
}

// check finds each wanted span in tr and checks its parent, tags and
// events; it returns the spans found, in the order of wants.
func check(t *testing.T, tr *jaeger.Trace, wants []spanWant) []jaeger.Span {
	t.Helper()
	found := make([]jaeger.Span, len(wants))
	for i, w := range wants {
		k := slices.IndexFunc(tr.Spans, func(s jaeger.Span) bool {
			return tr.Processes[s.ProcessID].ServiceName == w.service && s.Kind() == w.kind && s.OperationName == w.name
		})
		if k < 0 {
			t.Fatalf("no %s span %q of %s in the trace:\n%s", w.kind, w.name, w.service, tr.Tree())
		}
		s := tr.Spans[k]
		found[i] = s
		if w.parent >= 0 && s.Parent() != found[w.parent].SpanID {
			t.Errorf("span %q's parent = %s; want %q (%s):\n%s", w.name, s.Parent(), wants[w.parent].name, found[w.parent].SpanID, tr.Tree())
		}
		for key, want := range w.tags {
			if got, ok := s.Tag(key); !ok || (want != "*" && got != want) {
				t.Errorf("span %q: tag %s = %q (present %v); want %q", w.name, key, got, ok, want)
			}
		}
		for _, ev := range w.events {
			if !slices.Contains(s.Events(), ev) {
				t.Errorf("span %q: events %q lack %q", w.name, s.Events(), ev)
			}
		}
	}
	return found
}

// The core of a migrated call, from figway's SERVER span down: wants[at]
// is the SERVER span.
func brokerSpans(server int, method, exchange, key string, handler bool) []spanWant {
	w := []spanWant{
		{service: "figway", kind: "producer", name: "publish " + exchange, parent: server, tags: map[string]string{
			"messaging.system": "rabbitmq", "messaging.destination.name": exchange,
			"messaging.rabbitmq.destination.routing_key": key, "messaging.message.id": "*",
			"messaging.operation.type": "send", "figway.route": method,
		}},
		{service: "orders-worker", kind: "consumer", name: "process " + method, parent: server + 1, tags: map[string]string{
			"messaging.system": "rabbitmq", "messaging.operation.type": "process", "messaging.message.id": "*",
		}},
	}
	if handler {
		w = append(w, spanWant{service: "orders-worker", kind: "internal", name: "load order", parent: server + 2})
	}
	return w
}

func TestTraces(t *testing.T) {
	e := start(t)
	ctx := context.Background()

	t.Run("grpc", func(t *testing.T) {
		ctx, root := e.tracer.Start(ctx, "caller")
		if _, err := e.orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"}); err != nil {
			t.Fatal(err)
		}
		root.End()
		tr := e.jaeger.WaitTrace(t, root.SpanContext().TraceID().String(), 6)
		wants := append([]spanWant{
			{service: "test-client", kind: "internal", name: "caller", parent: -1},
			{service: "test-client", kind: "client", name: "orders.v1.OrderService/GetOrder", parent: 0},
			{service: "figway", kind: "server", name: "orders.v1.OrderService/GetOrder", parent: 1, tags: map[string]string{
				"rpc.system.name": "grpc", "figway.route": "orders.v1.OrderService/GetOrder", "figway.side": "broker", "figway.outcome": "OK",
			}, events: []string{"published", "confirmed", "reply received"}},
		}, brokerSpans(2, "orders.v1.OrderService/GetOrder", "orders", "orders.get", true)...)
		found := check(t, tr, wants)
		if _, ok := found[3].Tag("messaging.message.conversation_id"); !ok {
			t.Errorf("PRODUCER span has no correlation id (messaging.message.conversation_id)")
		}
		t.Logf("the trace of a gRPC call:\n%s", tr.Tree("figway.side", "figway.outcome", "messaging.rabbitmq.destination.routing_key"))
	})

	t.Run("rest", func(t *testing.T) {
		ctx, root := e.tracer.Start(ctx, "caller")
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.rest+"/v1/orders/o-2", nil)
		client := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport,
			otelhttp.WithTracerProvider(e.client), otelhttp.WithPropagators(propagation.TraceContext{}))}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		root.End()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/orders/o-2 = %s", resp.Status)
		}
		tr := e.jaeger.WaitTrace(t, root.SpanContext().TraceID().String(), 6)
		wants := append([]spanWant{
			{service: "test-client", kind: "internal", name: "caller", parent: -1},
			{service: "test-client", kind: "client", name: "HTTP GET", parent: 0},
			{service: "figway", kind: "server", name: "GET", parent: 1, tags: map[string]string{
				"http.request.method": "GET", "http.response.status_code": "200",
				"figway.route": "orders.v1.OrderService/GetOrder", "figway.side": "broker", "figway.outcome": "OK",
			}, events: []string{"published", "confirmed", "reply received"}},
		}, brokerSpans(2, "orders.v1.OrderService/GetOrder", "orders", "orders.get", true)...)
		check(t, tr, wants)
	})

	t.Run("event", func(t *testing.T) {
		ctx, root := e.tracer.Start(ctx, "caller")
		if _, err := e.orders.PlaceOrder(ctx, &ordersv1.PlaceOrderRequest{CustomerId: "c-1"}); err != nil {
			t.Fatal(err)
		}
		root.End()
		tr := e.jaeger.WaitTrace(t, root.SpanContext().TraceID().String(), 5)
		wants := append([]spanWant{
			{service: "test-client", kind: "internal", name: "caller", parent: -1},
			{service: "test-client", kind: "client", name: "orders.v1.OrderService/PlaceOrder", parent: 0},
			{service: "figway", kind: "server", name: "orders.v1.OrderService/PlaceOrder", parent: 1, tags: map[string]string{
				"figway.side": "broker", "figway.outcome": "OK",
			}, events: []string{"published", "confirmed"}},
		}, brokerSpans(2, "orders.v1.OrderService/PlaceOrder", "orders", "orders.placed", false)...)
		found := check(t, tr, wants)
		if slices.Contains(found[2].Events(), "reply received") {
			t.Errorf("an event's SERVER span records a reply: %q", found[2].Events())
		}
	})

	t.Run("shadow", func(t *testing.T) {
		ctx, root := e.tracer.Start(ctx, "caller")
		if _, err := e.orders.CancelOrder(ctx, &ordersv1.CancelOrderRequest{OrderId: "o-3"}); err != nil {
			t.Fatal(err)
		}
		root.End()
		tr := e.jaeger.WaitTrace(t, root.SpanContext().TraceID().String(), 4)
		found := check(t, tr, []spanWant{
			{service: "test-client", kind: "internal", name: "caller", parent: -1},
			{service: "test-client", kind: "client", name: "orders.v1.OrderService/CancelOrder", parent: 0},
			{service: "figway", kind: "server", name: "orders.v1.OrderService/CancelOrder", parent: 1, tags: map[string]string{
				"figway.side": "legacy", "figway.outcome": "OK",
			}},
			{service: "figway", kind: "client", name: "orders.v1.OrderService/CancelOrder", parent: 2},
		})
		// The copy is a trace of its own, linked to the caller's SERVER span.
		copyTrace := e.linkedTrace(t, found[2])
		check(t, copyTrace, []spanWant{
			{service: "figway", kind: "producer", name: "publish orders", parent: -1, tags: map[string]string{
				"figway.shadow": "true", "messaging.rabbitmq.destination.routing_key": "orders.cancel",
			}},
			{service: "orders-worker", kind: "consumer", name: "process orders.v1.OrderService/CancelOrder", parent: 0},
		})
		t.Logf("the shadow copy's trace:\n%s", copyTrace.Tree("figway.shadow"))
	})

	t.Run("fallback", func(t *testing.T) {
		// ListOrders' queue has no consumer: once figway has counted
		// them, the call goes to legacy without publishing.
		var root trace.Span
		poll.Until(t, 20*time.Second, "ListOrders answered by legacy", func() bool {
			var ctx2 context.Context
			ctx2, root = e.tracer.Start(ctx, "caller")
			defer root.End()
			cctx, cancel := context.WithTimeout(ctx2, 3*time.Second)
			defer cancel()
			resp, err := e.orders.ListOrders(cctx, &ordersv1.ListOrdersRequest{})
			return err == nil && len(resp.GetOrders()) == 1
		})
		tr := e.jaeger.WaitTrace(t, root.SpanContext().TraceID().String(), 4)
		check(t, tr, []spanWant{
			{service: "test-client", kind: "internal", name: "caller", parent: -1},
			{service: "test-client", kind: "client", name: "orders.v1.OrderService/ListOrders", parent: 0},
			{service: "figway", kind: "server", name: "orders.v1.OrderService/ListOrders", parent: 1, tags: map[string]string{
				"figway.side": "legacy", "figway.outcome": "OK",
			}},
			{service: "figway", kind: "client", name: "orders.v1.OrderService/ListOrders", parent: 2, tags: map[string]string{
				"rpc.system.name": "grpc",
			}},
		})
		for _, s := range tr.Spans {
			if s.Kind() == "producer" {
				t.Errorf("a call that fell back before publishing has a PRODUCER span:\n%s", tr.Tree())
			}
		}
	})

	t.Run("async", func(t *testing.T) {
		ctx, root := e.tracer.Start(ctx, "caller")
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.rest+"/v1/orders:export", strings.NewReader(`{}`))
		req.Header.Set("Prefer", "respond-async")
		req.Header.Set("Content-Type", "application/json")
		propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		root.End()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /v1/orders:export with respond-async = %s; want 202", resp.Status)
		}
		tr := e.jaeger.WaitTrace(t, root.SpanContext().TraceID().String(), 2)
		found := check(t, tr, []spanWant{
			{service: "test-client", kind: "internal", name: "caller", parent: -1},
			{service: "figway", kind: "server", name: "POST", parent: 0, tags: map[string]string{"http.response.status_code": "202"}},
		})
		for _, s := range tr.Spans {
			if s.Kind() == "producer" {
				t.Errorf("the caller's trace holds the operation's publish:\n%s", tr.Tree())
			}
		}
		op := e.linkedTrace(t, found[1])
		check(t, op, append([]spanWant{
			{service: "figway", kind: "internal", name: "operation orders.v1.OrderService/ExportOrders", parent: -1, tags: map[string]string{
				"figway.route": "orders.v1.OrderService/ExportOrders", "figway.side": "broker", "figway.outcome": "OK",
			}, events: []string{"published", "confirmed", "reply received"}},
		}, brokerSpans(0, "orders.v1.OrderService/ExportOrders", "orders", "orders.export", false)...))
	})

	t.Run("logs and exemplars", func(t *testing.T) {
		ctx, root := e.tracer.Start(ctx, "caller")
		_, err := e.orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "missing"})
		root.End()
		if err == nil {
			t.Fatal("GetOrder(missing) succeeded")
		}
		id := root.SpanContext().TraceID().String()
		poll.Until(t, 5*time.Second, "the failed call's log line", func() bool {
			return strings.Contains(e.logs.String(), `"trace_id":"`+id+`"`)
		})
		for line := range strings.Lines(e.logs.String()) {
			if strings.Contains(line, id) && !strings.Contains(line, `"span_id":"`) {
				t.Errorf("log line with trace_id but no span_id: %s", line)
			}
		}
		body := scrapeOpenMetrics(t, "http://"+e.admin+"/metrics")
		if !strings.Contains(body, `trace_id="`+id+`"`) {
			t.Errorf("figway_request_duration_seconds has no exemplar of trace %s:\n%s", id, grep(body, "figway_request_duration_seconds_bucket"))
		}
		// The status page names the slowest sampled call of each route.
		poll.Until(t, 20*time.Second, "the status page's slowest GetOrder call and its trace", func() bool {
			resp, err := http.Get("http://" + e.admin + "/?part=body")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			_, row, _ := strings.Cut(string(b), `data-method="orders.v1.OrderService/GetOrder"`)
			row, _, _ = strings.Cut(row, "</tr>")
			_, rest, ok := strings.Cut(row, `data-col="slowest-trace">`)
			return ok && len(rest) > 32 && rest[32] == '<'
		})
	})

	t.Run("jaeger stopped", func(t *testing.T) { jaegerStopped(t, e) })
}

// linkedTrace returns the trace of the span that links to s (Jaeger's
// FOLLOWS_FROM reference), searching figway's recent traces.
func (e *env) linkedTrace(t *testing.T, s jaeger.Span) *jaeger.Trace {
	t.Helper()
	var found *jaeger.Trace
	poll.Until(t, 20*time.Second, "a trace linked to span "+s.SpanID, func() bool {
		traces, err := e.jaeger.FindTraces(context.Background(), "figway", 100)
		if err != nil {
			return false
		}
		for i := range traces {
			for _, sp := range traces[i].Spans {
				for _, r := range sp.References {
					if r.RefType == "FOLLOWS_FROM" && r.SpanID == s.SpanID && traces[i].TraceID != s.TraceID {
						found = &traces[i]
					}
				}
			}
		}
		if found == nil {
			return false
		}
		// Wait for the worker's span too.
		tr, err := e.jaeger.GetTrace(context.Background(), found.TraceID)
		if err != nil || !slices.ContainsFunc(tr.Spans, func(s jaeger.Span) bool { return s.Kind() == "consumer" }) {
			found = nil
			return false
		}
		found = tr
		return true
	})
	return found
}

// jaegerStopped stops Jaeger and checks that calls go on at the same
// latency and that figway counts the spans it drops.
func jaegerStopped(t *testing.T, e *env) {
	const n = 60
	lat := func() time.Duration {
		var d []time.Duration
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			begin := time.Now()
			_, err := e.orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: fmt.Sprint("lat-", i)})
			d = append(d, time.Since(begin))
			cancel()
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	up := lat()
	before := prom.Get(t, "http://"+e.admin+"/metrics")
	exported := before.Value("figway_trace_spans_exported_total")
	dropped := before.Value("figway_trace_spans_dropped_total", "reason", "queue_full") +
		before.Value("figway_trace_spans_dropped_total", "reason", "export_failed")
	if exported <= 0 {
		t.Errorf("figway_trace_spans_exported_total = %v with Jaeger up; want > 0", exported)
	}

	e.jaeger.Stop()
	time.Sleep(300 * time.Millisecond) // the spans of the calls before go out, or fail
	down := lat()
	t.Logf("c=1 p50 of %d calls: %v with Jaeger up, %v with it stopped (loaded shared machine)", n, up, down)
	// The exporter's failures happen on its own goroutine: a call does
	// not wait for them. The margin covers a loaded 2-core machine.
	if down > 2*up+20*time.Millisecond {
		t.Errorf("p50 with Jaeger stopped %v; want about the %v with it up", down, up)
	}
	// Every call made at least its SERVER and PRODUCER spans; with the
	// exporter down none goes out, and each is counted when dropped.
	poll.Until(t, 20*time.Second, "figway counts the spans it drops", func() bool {
		s := prom.Get(t, "http://"+e.admin+"/metrics")
		d := s.Value("figway_trace_spans_dropped_total", "reason", "queue_full") +
			s.Value("figway_trace_spans_dropped_total", "reason", "export_failed")
		return d-dropped >= 2*n
	})
	after := prom.Get(t, "http://"+e.admin+"/metrics")
	t.Logf("spans: exported %v → %v; dropped queue_full %v, export_failed %v", exported, after.Value("figway_trace_spans_exported_total"),
		after.Value("figway_trace_spans_dropped_total", "reason", "queue_full"), after.Value("figway_trace_spans_dropped_total", "reason", "export_failed"))
}

// scrapeOpenMetrics scrapes url asking for the OpenMetrics format, which
// carries exemplars.
func scrapeOpenMetrics(t *testing.T, url string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("metrics Content-Type = %q; want OpenMetrics", ct)
	}
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(s, substr string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
