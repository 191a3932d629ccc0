package statuspage

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestQuantile(t *testing.T) {
	// 100 calls: 50 under 10ms, 40 in (10ms, 20ms], 10 in (20ms, 40ms].
	d := delta{count: 100, buckets: []bucket{{.01, 50}, {.02, 90}, {.04, 100}}}
	for _, c := range []struct{ q, want float64 }{{.5, .01}, {.7, .015}, {.99, .038}, {.25, .005}} {
		if got := d.quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v; want %v", c.q, got, c.want)
		}
	}
	if got := (delta{}).quantile(.5); !math.IsNaN(got) {
		t.Errorf("quantile of no calls = %v; want NaN", got)
	}
}

func TestClass(t *testing.T) {
	for code, want := range map[string]int{"OK": 2, "NotFound": 4, "Unavailable": 5, "DeadlineExceeded": 5, "200": 2, "429": 4, "502": 5} {
		if got := class(code); got != want {
			t.Errorf("class(%q) = %d; want %d", code, got, want)
		}
	}
}

// TestPageNumbers renders the page over a real metrics registry that
// counted calls, and reads the numbers back from the HTML.
func TestPageNumbers(t *testing.T) {
	desc, _ := filepath.Abs("../../examples/orders/orders.binpb")
	cfg, err := config.Parse([]byte(`
descriptors: [`+desc+`]
broker: {url: "amqp://127.0.0.1:1/"}
legacy: {grpc: "127.0.0.1:1"}
routes:
  - {method: orders.v1.OrderService/GetOrder, routing_key: orders.get, max_in_flight: 7}
  - {method: orders.v1.OrderService/ListOrders, routing_key: orders.list, weight: 30, sticky_by: x-user}
`), ".")
	if err != nil {
		t.Fatal(err)
	}
	table, err := cfg.Table(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New("test", metrics.Sources{Table: func() *gateway.Table { return table }})
	p := New(Options{Gatherer: m.Registry(), Table: func() *gateway.Table { return table }, Every: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond) // a sample before the calls

	for range 8 {
		m.ObserveRequest("orders.v1.OrderService/GetOrder", metrics.IngressGRPC, "OK", 3*time.Millisecond)
	}
	m.ObserveRequest("orders.v1.OrderService/GetOrder", metrics.IngressHTTP, "404", 3*time.Millisecond)
	m.ObserveRequest("orders.v1.OrderService/GetOrder", metrics.IngressGRPC, "Unavailable", 3*time.Millisecond)

	srv := httptest.NewServer(p)
	defer http.DefaultClient.CloseIdleConnections()
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/?part=body")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	html := string(body)
	row := func(method string) string {
		_, after, ok := strings.Cut(html, `data-method="orders.v1.OrderService/`+method+`"`)
		if !ok {
			t.Fatalf("no row for %s in\n%s", method, html)
		}
		r, _, _ := strings.Cut(after, "</tr>")
		return r
	}
	get := row("GetOrder")
	for _, want := range []string{
		`data-col="calls">10<`, `data-col="broker">10<`, `data-col="legacy">0<`,
		`data-col="err4">10.0%<`, `data-col="err5">10.0%<`, `data-col="inflight">0 / 7<`, `>broker<`,
	} {
		if !strings.Contains(get, want) {
			t.Errorf("GetOrder row lacks %s:\n%s", want, get)
		}
	}
	if list := row("ListOrders"); !strings.Contains(list, "split 30% broker/70% legacy by x-user") {
		t.Errorf("ListOrders row lacks its stage:\n%s", list)
	}
	if watch := row("WatchOrder"); !strings.Contains(watch, `>legacy<`) || !strings.Contains(watch, `data-col="calls">0<`) ||
		!strings.Contains(watch, `data-col="streams"`) {
		t.Errorf("WatchOrder (no route, server-streaming) row:\n%s", watch)
	}
	if strings.Contains(get, `data-col="streams"`) {
		t.Errorf("GetOrder (unary) row shows a stream:\n%s", get)
	}
	for _, path := range []string{"/", "/status.css", "/status.js"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("GET %s = %v, %v", path, resp, err)
		}
		resp.Body.Close()
	}
	resp, err = http.Post(srv.URL+"/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d; want 405: the page only reads", resp.StatusCode)
	}
}
