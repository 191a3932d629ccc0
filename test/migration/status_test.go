package migration

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

// chromium returns the path of a Chromium to drive, or skips the test
// (fails it under CI=true, where `make test` installs Debian's chromium).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FIGWAY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH: scripts/chromium.sh ensure installs Debian's")
	}
	t.Skip("no chromium on PATH (scripts/chromium.sh ensure installs it; set FIGWAY_CHROMIUM to use another)")
	return ""
}

// browser starts a headless Chromium with a fresh profile for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTime(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// statusLegacy is the legacy gRPC orders service of the test: it counts the
// calls it answers.
type statusLegacy struct {
	ordersv1.UnimplementedOrderServiceServer
	list, get, cancel atomic.Int64
}

func (l *statusLegacy) GetOrder(_ context.Context, r *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
	l.get.Add(1)
	return &ordersv1.Order{OrderId: r.GetOrderId(), CustomerId: "legacy"}, nil
}

func (l *statusLegacy) ListOrders(context.Context, *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
	l.list.Add(1)
	return &ordersv1.ListOrdersResponse{}, nil
}

func (l *statusLegacy) CancelOrder(_ context.Context, r *ordersv1.CancelOrderRequest) (*ordersv1.Order, error) {
	l.cancel.Add(1)
	return &ordersv1.Order{OrderId: r.GetOrderId(), Status: ordersv1.OrderStatus_ORDER_STATUS_CANCELLED}, nil
}

// startLegacy serves l on a loopback port until the test ends.
func startStatusLegacy(t *testing.T, l *statusLegacy) string {
	t.Helper()
	return figway.ServeLegacy(t, l)
}

// statusBroker counts the calls the worker answers.
type statusBroker struct{ list, placed atomic.Int64 }

func startStatusWorker(t *testing.T, url string, b *statusBroker) *worker.Worker {
	t.Helper()
	w := worker.New(worker.Config{URL: url, Queue: "orders.requests", Concurrency: 16, Logger: slog.New(slog.DiscardHandler)})
	worker.Handle(w, "orders.v1.OrderService/GetOrder", func(ctx context.Context, r *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
		if strings.HasPrefix(r.GetOrderId(), "down") {
			return nil, status.Error(codes.Unavailable, "the new orders service is down")
		}
		return &ordersv1.Order{OrderId: r.GetOrderId(), CustomerId: "new"}, nil
	})
	worker.Handle(w, "orders.v1.OrderService/ListOrders", func(context.Context, *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
		b.list.Add(1)
		return &ordersv1.ListOrdersResponse{}, nil
	})
	worker.Handle(w, "orders.v1.OrderService/PlaceOrder", func(context.Context, *ordersv1.PlaceOrderRequest) (*ordersv1.Order, error) {
		b.placed.Add(1)
		return &ordersv1.Order{}, nil
	})
	worker.Handle(w, "orders.v1.OrderService/CancelOrder", func(_ context.Context, r *ordersv1.CancelOrderRequest) (*ordersv1.Order, error) {
		// Differs from legacy: the shadow comparison finds status and
		// cancelled_at.
		return &ordersv1.Order{OrderId: r.GetOrderId(), Status: ordersv1.OrderStatus_ORDER_STATUS_PLACED, UpdatedAt: timestamppb.Now()}, nil
	})
	fault.RunWorker(t, w)
	return w
}

// demoRoutes is the demo's routes file (examples/orders/figway.yaml) on
// the test's addresses and broker, with a breaker on GetOrder that stays
// open for the test.
func statusDemoRoutes(t *testing.T, a figway.Addrs, broker, legacy string) string {
	t.Helper()
	demo, err := os.ReadFile("../../examples/orders/figway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	desc, _ := filepath.Abs("../../examples/orders/orders.binpb")
	y := strings.NewReplacer(
		"127.0.0.1:8080", a.GRPC, "127.0.0.1:8081", a.HTTP, "127.0.0.1:9090", a.Admin,
		"[orders.binpb]", "["+desc+"]",
		"amqp://guest:guest@127.0.0.1:5672/", broker,
		"127.0.0.1:50051", legacy,
		"    fallback: legacy ", "    breaker: {failures: 3, open_for: 10m}\n    fallback: legacy ",
	).Replace(string(demo))
	y = strings.Replace(y, "  http: http://127.0.0.1:8000\n", "", 1) // no legacy REST service here
	path := filepath.Join(t.TempDir(), "figway.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// statusRow is a row of the status page as the browser shows it.
type statusRow struct {
	Stage, Calls, Broker, Legacy, Breaker, InFlight, Consumers, Shadow, Streams string
}

// readRows reads the page's rows, by method, from the DOM.
const readRows = `(() => {
  const out = {};
  for (const tr of document.querySelectorAll("tr[data-method]")) {
    const c = (n) => { const e = tr.querySelector("[data-col=" + n + "]"); return e ? e.textContent.replace(/\s+/g, " ").trim() : ""; };
    out[tr.dataset.method] = {Stage: c("stage"), Calls: c("calls"), Broker: c("broker"), Legacy: c("legacy"),
      Breaker: c("breaker"), InFlight: c("inflight"), Consumers: c("consumers"), Shadow: c("shadow"), Streams: c("streams")};
  }
  return JSON.stringify(out);
})()`

func rowsOf(t *testing.T, ctx context.Context) map[string]statusRow {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](readRows))
	if err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	rows := map[string]statusRow{}
	if err := json.Unmarshal([]byte(s), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestStatusPageInBrowser runs the demo's routes with calls on every
// stage and reads the admin page in a real headless Chromium: the rows,
// stages and counts are what the test did, the page refreshes in place,
// and a screenshot is saved (to FIGWAY_SCREENSHOT if set).
func TestStatusPageInBrowser(t *testing.T) {
	ctx := browser(t)
	url := os.Getenv("FIGWAY_TEST_AMQP_URL") // a broker of your own, used as is
	if url == "" {
		url = rabbitmq.ForTest(t).NewVHost(t)
	}
	legacy := &statusLegacy{}
	side := &statusBroker{}
	a := figway.NewAddrs(t)
	path := statusDemoRoutes(t, a, url, startStatusLegacy(t, legacy))
	w := startStatusWorker(t, url, side)
	figway.Serve(t, path, a, true)
	fault.WaitConsuming(t, w)

	conn := figway.Dial(t, a.GRPC)
	client := ordersv1.NewOrderServiceClient(conn)
	call := func(f func(context.Context) error) {
		t.Helper()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f(cctx); err != nil {
			t.Fatal(err)
		}
	}
	// 30 calls from 30 callers (sticky by x-user) of the demo's ramp, at
	// its first step (10 %): the split is what the two sides saw.
	for i := range 30 {
		call(func(ctx context.Context) error {
			_, err := client.ListOrders(figway.WithMetadata(ctx, "x-user", fmt.Sprintf("user-%d", i)), &ordersv1.ListOrdersRequest{})
			return err
		})
	}
	// GetOrder: 4 answered by the worker, 3 that the worker fails with
	// UNAVAILABLE (the caller gets it) open the breaker, then 2 that the
	// open breaker sends to legacy at once (fallback).
	for i := range 9 {
		id := fmt.Sprintf("o-%d", i)
		if i >= 4 && i < 7 {
			id = fmt.Sprintf("down-%d", i)
		}
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := client.GetOrder(cctx, &ordersv1.GetOrderRequest{OrderId: id})
		cancel()
		if want := codes.OK; strings.HasPrefix(id, "down") {
			want = codes.Unavailable
			if status.Code(err) != want {
				t.Fatalf("GetOrder(%s) = %v; want %v", id, err, want)
			}
		} else if err != nil {
			t.Fatalf("GetOrder(%s) = %v", id, err)
		}
	}
	if n := legacy.get.Load(); n != 2 {
		t.Fatalf("legacy answered %d GetOrder calls; want the 2 the open breaker sent there", n)
	}
	// CancelOrder: legacy answers; the worker's shadow copies differ.
	for i := range 4 {
		call(func(ctx context.Context) error {
			_, err := client.CancelOrder(ctx, &ordersv1.CancelOrderRequest{OrderId: fmt.Sprintf("o-%d", i)})
			return err
		})
	}

	admin := "http://" + a.Admin + "/"
	if err := chromedp.Do(ctx, chromedp.Navigate(admin), chromedp.WaitVisible(chromedp.CSS(`tr[data-method]`)),
		chromedp.Evaluate[chromedp.Void](`void (window.figwayMarker = "same page")`)); err != nil {
		t.Fatalf("loading %s: %v", admin, err)
	}
	rows := rowsOf(t, ctx)
	const svc = "orders.v1.OrderService/"
	list := rows[svc+"ListOrders"]
	wantBroker, wantLegacy := side.list.Load(), legacy.list.Load()
	if wantBroker == 0 || wantLegacy == 0 {
		t.Errorf("the 30 ramped calls went %d to the broker, %d to legacy; want both sides", wantBroker, wantLegacy)
	}
	if list.Calls != "30" || list.Broker != fmt.Sprint(wantBroker) || list.Legacy != fmt.Sprint(wantLegacy) {
		t.Errorf("ListOrders row = %+v; want 30 calls, %d broker, %d legacy", list, wantBroker, wantLegacy)
	}
	if !strings.HasPrefix(list.Stage, "ramp [10 25 50 100]% by x-user") {
		t.Errorf("ListOrders stage = %q; want the ramp of figway routes", list.Stage)
	}
	get := rows[svc+"GetOrder"]
	if !strings.HasPrefix(get.Breaker, "open") || get.Stage != "broker, fallback legacy, pin by x-figway-pin" || get.Calls != "9" {
		t.Errorf("GetOrder row = %+v; want 9 calls, stage broker with fallback, breaker open", get)
	}
	if get.Broker != "7" || get.Legacy != "2" {
		t.Errorf("GetOrder sides = %s broker / %s legacy; want 7 / 2", get.Broker, get.Legacy)
	}
	cancel := rows[svc+"CancelOrder"]
	if cancel.Stage != "legacy+shadow(compare)" || cancel.Legacy != "4" || !strings.Contains(cancel.Shadow, "status") {
		t.Errorf("CancelOrder row = %+v; want legacy+shadow(compare), 4 legacy calls, mismatches naming status", cancel)
	}
	if w := rows[svc+"WatchOrder"]; w.Stage != "broker, pin by x-figway-pin" || w.Calls != "0" || w.Streams != "stream" {
		t.Errorf("WatchOrder row = %+v; want broker, no calls, marked as a stream", w)
	}
	if get.Streams != "" {
		t.Errorf("GetOrder row = %+v; want no stream mark", get)
	}
	if place := rows[svc+"PlaceOrder"]; place.Stage != "broker, pin by x-figway-pin" || place.InFlight != "0 / 1024" {
		t.Errorf("PlaceOrder row = %+v; want broker, 0 / 1024 in flight", place)
	}
	// The queue's consumers (the worker's channel) and the node figway
	// is connected to.
	if place := rows[svc+"PlaceOrder"]; place.Consumers != "1" {
		t.Errorf("PlaceOrder row = %+v; want 1 consumer on orders.requests", place)
	}
	card, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("[data-col=broker-conn]").textContent.replace(/\s+/g, " ").trim()`))
	if node := strings.TrimPrefix(strings.Split(strings.TrimPrefix(url, "amqp://"), "/")[0], "guest:guest@"); err != nil ||
		!strings.HasPrefix(card, "connected "+node+" ") {
		t.Errorf("broker card %q (%v); want connected to %s", card, err, node)
	}

	// More calls while the page is open: it shows them without a reload.
	for range 5 {
		call(func(ctx context.Context) error {
			_, err := client.PlaceOrder(ctx, &ordersv1.PlaceOrderRequest{CustomerId: "c-1"})
			return err
		})
	}
	poll.Until(t, 30*time.Second, "the PlaceOrder row counting 5 calls", func() bool {
		return rowsOf(t, ctx)[svc+"PlaceOrder"].Calls == "5"
	})
	if marker, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.figwayMarker || ""`)); err != nil || marker != "same page" {
		t.Errorf("window.figwayMarker = %q, %v: the page was reloaded, not refreshed in place", marker, err)
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("FIGWAY_SCREENSHOT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "status.png")
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(png))
}
