package migration

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/prom"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

// parityRoutes: GetOrder is a canary at weight 50 that callers can pin;
// ListOrders stays legacy's and mirrors a 10% sample, sticky by x-user;
// PlaceOrder and CancelOrder are migrated and answer with reply metadata.
const parityRoutes = `
server: {grpc: "GRPC", http: "HTTP", admin: "ADMIN", shutdown_grace: 2s}
descriptors: ["DESC"]
broker: {url: "BROKER"}
legacy: {grpc: "LEGACY"}
defaults: {pin_by: x-pin, response_headers: [location, etag]}
routes:
  - {method: orders.v1.OrderService/GetOrder, exchange: orders, routing_key: orders.get, weight: 50}
  - {method: orders.v1.OrderService/ListOrders, to: legacy, shadow: {percent: 10}, sticky_by: x-user, forward_headers: [x-user], exchange: orders, routing_key: orders.list}
  - {method: orders.v1.OrderService/PlaceOrder, exchange: orders, routing_key: orders.place}
  - {method: orders.v1.OrderService/CancelOrder, exchange: orders, routing_key: orders.cancel}
topology:
  exchanges: [{name: orders, type: topic}]
  queues: [{name: orders.requests, bind: {exchange: orders, key: "orders.#"}}]
`

// legacyOrders is the legacy gRPC service of the parity tests: it says
// "legacy" in every answer and counts its calls.
type legacyOrders struct {
	ordersv1.UnimplementedOrderServiceServer
	calls atomic.Int64
}

func (l *legacyOrders) GetOrder(_ context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
	l.calls.Add(1)
	return &ordersv1.Order{OrderId: req.GetOrderId(), Note: "legacy"}, nil
}

func (l *legacyOrders) ListOrders(context.Context, *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
	l.calls.Add(1)
	return &ordersv1.ListOrdersResponse{NextPageToken: "legacy"}, nil
}

// startLegacyOrders serves l on a free loopback port until the test ends.
func startLegacyOrders(t *testing.T, l *legacyOrders) string {
	t.Helper()
	return figway.ServeLegacy(t, l)
}

// parityWorker counts what it served: GetOrder calls, and ListOrders
// shadow copies by the dry run (OnShadow) and by the real handler, which
// must see none; shadowUsers counts the copies per x-user.
type parityWorker struct {
	getOrders, dryRuns, realRuns atomic.Int64
	mu                           sync.Mutex
	shadowUsers                  map[string]int
	w                            *worker.Worker
}

func runParityWorker(t *testing.T, url string) *parityWorker {
	t.Helper()
	pw := &parityWorker{shadowUsers: map[string]int{}}
	w := worker.New(worker.Config{URL: url, Queue: "orders.requests", Concurrency: 32, Logger: slog.New(slog.DiscardHandler)})
	pw.w = w
	worker.Handle(w, "orders.v1.OrderService/GetOrder", func(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
		pw.getOrders.Add(1)
		if req.GetOrderId() == "missing" {
			worker.SetHeader(ctx, metadata.Pairs("x-reason", "never placed"))
			return nil, status.Error(codes.NotFound, "no such order")
		}
		return &ordersv1.Order{OrderId: req.GetOrderId(), Note: "worker"}, nil
	})
	worker.Handle(w, "orders.v1.OrderService/ListOrders",
		func(ctx context.Context, req *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
			pw.realRuns.Add(1)
			return &ordersv1.ListOrdersResponse{}, nil
		},
		worker.OnShadow(func(ctx context.Context, req *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
			if !worker.IsShadow(ctx) {
				t.Error("OnShadow's handler ran for a call that is no shadow copy")
			}
			pw.dryRuns.Add(1)
			if u := worker.Metadata(ctx)["x-user"]; len(u) > 0 {
				pw.mu.Lock()
				pw.shadowUsers[u[0]]++
				pw.mu.Unlock()
			}
			return &ordersv1.ListOrdersResponse{}, nil
		}))
	worker.Handle(w, "orders.v1.OrderService/PlaceOrder", func(ctx context.Context, req *ordersv1.PlaceOrderRequest) (*ordersv1.Order, error) {
		id := "o-" + worker.EventID(ctx)[:8]
		for _, err := range []error{
			worker.SetHTTPStatus(ctx, http.StatusCreated),
			worker.SetHeader(ctx, metadata.Pairs("location", "/v1/orders/"+id, "etag", `"v1"`, "x-trace-bin", "\x00\xff")),
			worker.SetTrailer(ctx, metadata.Pairs("x-took", "3ms")),
		} {
			if err != nil {
				return nil, err
			}
		}
		return &ordersv1.Order{OrderId: id, CustomerId: req.GetCustomerId()}, nil
	})
	worker.Handle(w, "orders.v1.OrderService/CancelOrder", func(ctx context.Context, req *ordersv1.CancelOrderRequest) (*ordersv1.Order, error) {
		if err := worker.SetHTTPStatus(ctx, http.StatusNoContent); err != nil {
			return nil, err
		}
		return &ordersv1.Order{OrderId: req.GetOrderId(), Status: ordersv1.OrderStatus_ORDER_STATUS_CANCELLED}, nil
	})
	fault.RunWorker(t, w)
	return pw
}

// parity is figway serving parityRoutes in-process, with its legacy
// service and worker.
type parity struct {
	a      figway.Addrs
	legacy *legacyOrders
	worker *parityWorker
	orders ordersv1.OrderServiceClient
}

func startParity(t *testing.T) *parity {
	t.Helper()
	url := rabbitmq.ForTest(t).NewVHost(t)
	p := &parity{a: figway.NewAddrs(t), legacy: &legacyOrders{}}
	legacyAddr := startLegacyOrders(t, p.legacy)
	desc, _ := filepath.Abs("../../examples/orders/orders.binpb")
	path := filepath.Join(t.TempDir(), "figway.yaml")
	routes := strings.NewReplacer("GRPC", p.a.GRPC, "HTTP", p.a.HTTP, "ADMIN", p.a.Admin, "DESC", desc,
		"BROKER", url, "LEGACY", legacyAddr).Replace(parityRoutes)
	if err := os.WriteFile(path, []byte(routes), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.worker = runParityWorker(t, url)
	figway.Serve(t, path, p.a, true)
	fault.WaitConsuming(t, p.worker.w)
	t.Logf("figway ready in %v", time.Since(start))
	p.orders = ordersv1.NewOrderServiceClient(figway.Dial(t, p.a.GRPC))
	return p
}

// TestPinnedCanary: at weight 50, calls pinned to a side all reach it,
// over gRPC and REST; unpinned calls follow the weight; a value other
// than broker or legacy is ignored; a legacy route pinned to the broker
// stays on legacy; pins are counted.
func TestPinnedCanary(t *testing.T) {
	p := startParity(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	notes := func(n int, pin string) map[string]int {
		t.Helper()
		got := map[string]int{}
		cctx := ctx
		if pin != "" {
			cctx = figway.WithMetadata(ctx, "x-pin", pin)
		}
		for i := range n {
			o, err := p.orders.GetOrder(cctx, &ordersv1.GetOrderRequest{OrderId: fmt.Sprint(i)})
			if err != nil {
				t.Fatalf("GetOrder pinned %q: %v", pin, err)
			}
			got[o.GetNote()]++
		}
		return got
	}
	if got := notes(100, "broker"); got["worker"] != 100 {
		t.Errorf("100 calls pinned to broker reached %v; want all 100 the worker", got)
	}
	if got := notes(100, "legacy"); got["legacy"] != 100 {
		t.Errorf("100 calls pinned to legacy reached %v; want all 100 legacy", got)
	}
	unpinned := notes(200, "")
	unknown := notes(200, "nowhere")
	t.Logf("unpinned at weight 50: %v; pinned to %q: %v", unpinned, "nowhere", unknown)
	for _, got := range []map[string]int{unpinned, unknown} {
		// Binomial(200, 0.5): below 60 on a side is a 1-in-10^8 event.
		if got["worker"] < 60 || got["legacy"] < 60 || got["worker"]+got["legacy"] != 200 {
			t.Errorf("unpinned calls went %v; want both sides used at weight 50", got)
		}
	}

	// REST, pinned to legacy: the call is transcoded and sent over gRPC.
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.a.HTTP+"/v1/orders/r-1", nil)
	req.Header.Set("X-Pin", "Legacy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"legacy"`) {
		t.Errorf("GET /v1/orders/r-1 pinned to legacy = %d %s; want legacy's answer", resp.StatusCode, body)
	}

	// A side the route does not have: ListOrders is legacy's.
	before := p.worker.realRuns.Load()
	l, err := p.orders.ListOrders(figway.WithMetadata(ctx, "x-pin", "broker", "x-user", "u-never-sampled"), &ordersv1.ListOrdersRequest{})
	if err != nil || l.GetNextPageToken() != "legacy" {
		t.Errorf("ListOrders (to: legacy) pinned to broker = %v, %v; want legacy's answer", l, err)
	}
	if p.worker.realRuns.Load() != before {
		t.Error("ListOrders pinned to broker ran on the worker")
	}

	s := prom.Get(t, "http://"+p.a.Admin+"/metrics")
	const getOrder = "orders.v1.OrderService/GetOrder"
	for to, want := range map[string]float64{"broker": 100, "legacy": 101} {
		if got := s.Value("figway_pinned_calls_total", "route", getOrder, "to", to); got != want {
			t.Errorf("figway_pinned_calls_total{to=%q} = %v; want %v", to, got, want)
		}
	}
	canary := s.Value("figway_canary_calls_total", "route", getOrder, "to", "broker") + s.Value("figway_canary_calls_total", "route", getOrder, "to", "legacy")
	if canary != 400 {
		t.Errorf("figway_canary_calls_total = %v; want 400 (the unpinned calls only)", canary)
	}
}

// TestShadowSample: shadow: {percent: 10} mirrors about a tenth of 10,000
// calls, each copy marked figway-shadow and served by the worker's dry run
// (worker.OnShadow), never its real handler; with sticky_by a caller is
// always in or always out of the sample; the metrics tell sampled-out
// calls from mirrored ones.
func TestShadowSample(t *testing.T) {
	p := startParity(t)
	// A bound against a hang, not a speed test: on a two-core machine
	// under a load average of 65, 120 s saw 8,621 of the calls.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	const calls, conc = 10000, 32
	var failed atomic.Int64
	var wg sync.WaitGroup
	for g := range conc {
		wg.Go(func() {
			for i := g; i < calls; i += conc {
				if _, err := p.orders.ListOrders(ctx, &ordersv1.ListOrdersRequest{}); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d ListOrders in %v", calls, time.Since(start).Round(time.Millisecond))
	if failed.Load() > 0 {
		t.Fatalf("%d of %d ListOrders failed", failed.Load(), calls)
	}
	const listOrders = "orders.v1.OrderService/ListOrders"
	admin := "http://" + p.a.Admin + "/metrics"
	var s prom.Scrape
	poll.Until(t, 30*time.Second, "every mirrored copy handled by the worker", func() bool {
		s = prom.Get(t, admin)
		sent := s.Value("figway_shadow_copies_total", "route", listOrders, "result", "sent")
		return sent > 0 && float64(p.worker.dryRuns.Load()) == sent
	})
	sent := s.Value("figway_shadow_copies_total", "route", listOrders, "result", "sent")
	out := s.Value("figway_shadow_copies_total", "route", listOrders, "result", "sampled_out")
	dropped := s.Value("figway_shadow_copies_total", "route", listOrders, "result", "dropped")
	t.Logf("10%% of %d calls: %v copies sent, %v sampled out, %v dropped", calls, sent, out, dropped)
	if sent < 900 || sent > 1100 {
		t.Errorf("copies sent = %v; want 900-1,100 of %d calls at 10%%", sent, calls)
	}
	if sent+out+dropped != calls {
		t.Errorf("sent %v + sampled out %v + dropped %v = %v; want %d", sent, out, dropped, sent+out+dropped, calls)
	}
	if n := p.worker.realRuns.Load(); n != 0 {
		t.Errorf("the real ListOrders handler ran %d times; want 0: every copy is a shadow", n)
	}

	// Sticky: 200 users, 3 calls each; a user's calls are all mirrored
	// or none is.
	for u := range 200 {
		uctx := figway.WithMetadata(ctx, "x-user", fmt.Sprintf("u-%d", u))
		for range 3 {
			if _, err := p.orders.ListOrders(uctx, &ordersv1.ListOrdersRequest{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	poll.Until(t, 30*time.Second, "sticky copies handled", func() bool {
		s = prom.Get(t, admin)
		return float64(p.worker.dryRuns.Load()) == s.Value("figway_shadow_copies_total", "route", listOrders, "result", "sent")
	})
	p.worker.mu.Lock()
	defer p.worker.mu.Unlock()
	for u, n := range p.worker.shadowUsers {
		if n != 3 {
			t.Errorf("user %s: %d of 3 calls mirrored; want all or none", u, n)
		}
	}
	t.Logf("sticky sample: %d of 200 users mirrored", len(p.worker.shadowUsers))
	if len(p.worker.shadowUsers) < 5 || len(p.worker.shadowUsers) > 50 {
		t.Errorf("%d of 200 users in a 10%% sample; want 5-50", len(p.worker.shadowUsers))
	}
}

// TestReplyMetadata: the worker's header and trailer metadata and HTTP
// status reach gRPC callers as header and trailer, REST callers as
// response_headers under their own name, Grpc-Metadata-* and (with TE:
// trailers) Grpc-Trailer-*; 204 answers without a body; an error keeps its
// status mapping and its metadata.
func TestReplyMetadata(t *testing.T) {
	p := startParity(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var header, trailer metadata.MD
	o, err := p.orders.PlaceOrder(ctx, &ordersv1.PlaceOrderRequest{CustomerId: "c-1"}, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	want := "/v1/orders/" + o.GetOrderId()
	if got := header.Get("location"); len(got) != 1 || got[0] != want {
		t.Errorf("gRPC header location = %q; want %q", got, want)
	}
	if got := header.Get("x-trace-bin"); len(got) != 1 || got[0] != "\x00\xff" {
		t.Errorf("gRPC header x-trace-bin = %q; want the bytes 00 ff", got)
	}
	if got := trailer.Get("x-took"); len(got) != 1 || got[0] != "3ms" {
		t.Errorf("gRPC trailer x-took = %q; want 3ms", got)
	}
	if got := header.Get("figway-http-status"); len(got) != 0 {
		t.Errorf("gRPC header figway-http-status = %q; want none: the status is for REST", got)
	}

	req, _ := http.NewRequest(http.MethodPost, "http://"+p.a.HTTP+"/v1/orders", strings.NewReader(`{"customerId":"c-2"}`))
	req.Header.Set("TE", "trailers")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(loc, "/v1/orders/o-") || !strings.Contains(string(body), strings.TrimPrefix(loc, "/v1/orders/")) {
		t.Errorf("POST /v1/orders = %d, Location %q, %s; want 201 with the new order's Location", resp.StatusCode, loc, body)
	}
	for name, want := range map[string]string{
		"Etag":                      `"v1"`,
		"Grpc-Metadata-X-Trace-Bin": base64.StdEncoding.EncodeToString([]byte("\x00\xff")),
		"Grpc-Metadata-Location":    "",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("POST /v1/orders header %s = %q; want %q", name, got, want)
		}
	}
	if got := resp.Trailer.Get("Grpc-Trailer-X-Took"); got != "3ms" {
		t.Errorf("POST /v1/orders trailer Grpc-Trailer-X-Took = %q (trailers %v); want 3ms", got, resp.Trailer)
	}

	resp, err = http.Post("http://"+p.a.HTTP+"/v1/orders/o-1:cancel", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || len(body) != 0 || resp.Header.Get("Content-Type") != "" {
		t.Errorf("POST /v1/orders/o-1:cancel = %d %q, Content-Type %q; want 204, no body", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	if o, err := p.orders.CancelOrder(ctx, &ordersv1.CancelOrderRequest{OrderId: "o-1"}); err != nil || o.GetStatus() != ordersv1.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Errorf("CancelOrder over gRPC = %v, %v; want the order: gRPC ignores the HTTP status", o, err)
	}

	req, _ = http.NewRequest(http.MethodGet, "http://"+p.a.HTTP+"/v1/orders/missing", nil)
	req.Header.Set("X-Pin", "broker")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Grpc-Metadata-X-Reason") != "never placed" {
		t.Errorf("GET /v1/orders/missing = %d, Grpc-Metadata-X-Reason %q; want 404 with the worker's header", resp.StatusCode, resp.Header.Get("Grpc-Metadata-X-Reason"))
	}
	header = nil
	_, err = p.orders.GetOrder(figway.WithMetadata(ctx, "x-pin", "broker"), &ordersv1.GetOrderRequest{OrderId: "missing"}, grpc.Header(&header))
	if status.Code(err) != codes.NotFound || len(header.Get("x-reason")) != 1 {
		t.Errorf("GetOrder(missing) = %v, header %v; want NOT_FOUND with x-reason", err, header)
	}
}
