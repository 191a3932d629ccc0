package serve

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

const corsRoutes = `
server:
  grpc: "GRPC"
  http: "HTTP"
  admin: "ADMIN"
  cors: {allow_origins: ["https://*.example.com"], allow_headers: [x-tenant-id], expose_headers: [location], allow_credentials: true, max_age: 10m}
descriptors: ["DESC"]
broker: {url: "BROKER"}
legacy: {http: "LEGACY"}
routes:
  - {method: orders.v1.OrderService/GetOrder, exchange: orders, routing_key: orders.get}
  - {method: orders.v1.OrderService/PlaceOrder, exchange: orders, routing_key: orders.place}
topology:
  exchanges: [{name: orders, type: topic}]
  queues: [{name: orders.requests, bind: {exchange: orders, key: "orders.#"}}]
`

// TestCORS: with server.cors, figway answers real preflight requests with
// the methods of the path's bindings, and every REST answer — a broker
// route's, an error, the passthrough's — carries figway's CORS headers
// once, replacing legacy's; a disallowed origin gets no
// Access-Control-Allow-Origin from either.
func TestCORS(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	var legacyCalls, legacyOptions atomic.Int64
	legacy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		legacyCalls.Add(1)
		if r.Method == http.MethodOptions {
			legacyOptions.Add(1)
		}
		w.Header().Set("Access-Control-Allow-Origin", "*") // legacy's own, laxer policy
		w.Header().Add("Vary", "Origin")
		w.Write([]byte("legacy"))
	}))
	defer legacy.Close()

	a := figway.NewAddrs(t)
	desc, _ := filepath.Abs("../../examples/orders/orders.binpb")
	path := filepath.Join(t.TempDir(), "figway.yaml")
	routes := strings.NewReplacer("GRPC", a.GRPC, "HTTP", a.HTTP, "ADMIN", a.Admin, "DESC", desc, "BROKER", url, "LEGACY", legacy.URL).Replace(corsRoutes)
	if err := os.WriteFile(path, []byte(routes), 0o600); err != nil {
		t.Fatal(err)
	}
	w := worker.New(worker.Config{URL: url, Queue: "orders.requests"})
	worker.Handle(w, "orders.v1.OrderService/GetOrder", func(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
		if req.GetOrderId() == "missing" {
			return nil, status.Error(codes.NotFound, "no such order")
		}
		return &ordersv1.Order{OrderId: req.GetOrderId()}, nil
	})
	fault.RunWorker(t, w)
	figway.Serve(t, path, a, true)
	fault.WaitConsuming(t, w)

	const good, evil = "https://shop.example.com", "https://evil.test"
	do := func(method, path, origin string, header ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+a.HTTP+path, nil)
		req.Header.Set("Origin", origin)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	allowOrigin := func(resp *http.Response) []string { return resp.Header.Values("Access-Control-Allow-Origin") }

	preflights := []struct {
		name, path, origin, method string
		allowed                    bool
	}{
		{"bound verb", "/v1/orders", good, "POST", true},
		{"verb of another binding of the path", "/v1/orders/o-1", good, "GET", true},
		{"verb no binding of the path has", "/v1/orders", good, "DELETE", false},
		{"another verb on a bound path", "/v1/orders/o-1", good, "PUT", false},
		{"passthrough path", "/legacy/things/1", good, "PUT", true},
		{"disallowed origin", "/v1/orders", evil, "POST", false},
	}
	for _, pf := range preflights {
		t.Run("preflight "+pf.name, func(t *testing.T) {
			resp := do(http.MethodOptions, pf.path, pf.origin, "Access-Control-Request-Method", pf.method,
				"Access-Control-Request-Headers", "x-tenant-id")
			got := allowOrigin(resp)
			if !pf.allowed {
				if len(got) != 0 {
					t.Errorf("OPTIONS %s for %s from %s: Access-Control-Allow-Origin %q; want none", pf.path, pf.method, pf.origin, got)
				}
				return
			}
			if resp.StatusCode != http.StatusNoContent || len(got) != 1 || got[0] != pf.origin ||
				resp.Header.Get("Access-Control-Allow-Methods") != pf.method ||
				resp.Header.Get("Access-Control-Allow-Headers") != "x-tenant-id" ||
				resp.Header.Get("Access-Control-Allow-Credentials") != "true" || resp.Header.Get("Access-Control-Max-Age") != "600" {
				t.Errorf("OPTIONS %s for %s = %d %v; want 204 allowing %s, x-tenant-id, credentials, max-age 600", pf.path, pf.method, resp.StatusCode, resp.Header, pf.method)
			}
		})
	}
	if n := legacyOptions.Load(); n != 0 {
		t.Errorf("legacy got %d preflight requests; want figway to answer them all", n)
	}

	answers := []struct {
		name, path, origin string
		code               int
	}{
		{"broker route", "/v1/orders/o-1", good, http.StatusOK},
		{"error", "/v1/orders/missing", good, http.StatusNotFound},
		{"no binding, passthrough", "/legacy/things/1", good, http.StatusOK},
		{"passthrough, disallowed origin", "/legacy/things/1", evil, http.StatusOK},
		{"broker route, disallowed origin", "/v1/orders/o-1", evil, http.StatusOK},
	}
	for _, c := range answers {
		t.Run(c.name, func(t *testing.T) {
			resp := do(http.MethodGet, c.path, c.origin)
			got := allowOrigin(resp)
			if resp.StatusCode != c.code {
				t.Errorf("GET %s = %d; want %d", c.path, resp.StatusCode, c.code)
			}
			if c.origin == evil {
				if len(got) != 0 {
					t.Errorf("GET %s from %s: Access-Control-Allow-Origin %q; want none", c.path, c.origin, got)
				}
				return
			}
			if len(got) != 1 || got[0] != c.origin || resp.Header.Get("Access-Control-Expose-Headers") != "Location" ||
				len(resp.Header.Values("Access-Control-Allow-Credentials")) != 1 {
				t.Errorf("GET %s: CORS headers %v; want figway's, once", c.path, resp.Header)
			}
			if v := resp.Header.Values("Vary"); len(v) != 1 || strings.Count(strings.ToLower(v[0]), "origin") != 1 {
				t.Errorf("GET %s: Vary %q; want Origin once", c.path, v)
			}
		})
	}
}
