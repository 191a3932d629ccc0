package httpin_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/figway/figway/adapters/httpin"
	"github.com/figway/figway/gateway"
	tv1 "github.com/figway/figway/gen/figway/testapi/v1"
)

// legacyGRPC is the gateway's Legacy port, recording what it is sent and
// answering with an empty Book: it stands for the legacy gRPC service of
// canary and shadow routes.
type legacyGRPC struct {
	mu    sync.Mutex
	calls []legacyCall
}

type legacyCall struct {
	method string
	req    []byte
	md     metadata.MD
}

func (l *legacyGRPC) Unary(_ context.Context, method string, req []byte, md metadata.MD) ([]byte, metadata.MD, metadata.MD, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, legacyCall{method, req, md})
	return nil, metadata.Pairs("x-served-by", "legacy"), nil, nil
}

// TestStranglerRoutes proves that REST calls of canary and shadow routes
// take the gateway's legacy path with the caller's metadata as
// grpc-gateway would pass it, and that a shadow route without a legacy gRPC
// upstream goes to the passthrough with its body intact.
func TestStranglerRoutes(t *testing.T) {
	routes := strings.NewReplacer(
		"defaults:", "legacy: {grpc: \"127.0.0.1:1\", http: \"http://127.0.0.1:1\"}\ndefaults:",
		"routing_key: library.get}", "routing_key: library.get, weight: 0}",
		"routing_key: library.move}", "routing_key: library.move, to: legacy, shadow: true}",
	).Replace(routesTmpl)
	cfg, _ := loadConfig(t, routes, "amqp://guest:guest@127.0.0.1:1/")
	table, err := cfg.Table(nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	var passed []string
	passthrough := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		passed = append(passed, r.Method+" "+r.URL.Path+" "+string(body))
		w.WriteHeader(http.StatusTeapot)
	})

	legacy := new(legacyGRPC)
	gw := gateway.New(gateway.Options{Publisher: cannedPublisher{}, Legacy: legacy, Table: table, Logger: log})
	s, err := httpin.New(gw, httpin.Options{Logger: log, Passthrough: passthrough})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/v1/shelves/s1/books/b1?includeReviews=true", nil)
	req.Header.Set("Grpc-Metadata-X-User", "u-1")
	req.Header.Set("Authorization", "Bearer t")
	req.Header.Set("Accept-Language", "fr")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != 200 || len(legacy.calls) != 1 {
		t.Fatalf("GET of a weight-0 canary route = %d %s, %d legacy calls; want 200 from legacy", w.Code, w.Body, len(legacy.calls))
	}
	if v := w.Header().Get("Grpc-Metadata-X-Served-By"); v != "legacy" {
		t.Errorf("Grpc-Metadata-X-Served-By = %q; want legacy's header metadata, as grpc-gateway forwards it", v)
	}
	got := legacy.calls[0]
	gotReq := new(tv1.GetBookRequest)
	if err := proto.Unmarshal(got.req, gotReq); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&tv1.GetBookRequest{Name: book, IncludeReviews: true}, gotReq, protocmp.Transform()); got.method != "/"+svc+"GetBook" || diff != "" {
		t.Errorf("legacy got %s (-want +got):\n%s", got.method, diff)
	}
	// grpc-gateway v2.33's default matcher: Authorization as is, permanent
	// headers as grpcgateway-*, X-Forwarded-*; no Grpc-Metadata-* (a
	// client could forge any key with it).
	for k, want := range map[string]string{"authorization": "Bearer t", "grpcgateway-accept-language": "fr", "x-forwarded-host": "example.com"} {
		if v := got.md.Get(k); len(v) != 1 || v[0] != want {
			t.Errorf("legacy metadata %s = %v; want [%s]", k, v, want)
		}
	}
	if v := got.md.Get("x-user"); len(v) != 0 {
		t.Errorf("legacy metadata x-user = %v; want none from Grpc-Metadata-X-User", v)
	}

	// Without a legacy gRPC upstream, the shadow route is the passthrough's.
	gw = gateway.New(gateway.Options{Publisher: cannedPublisher{}, Table: table, Logger: log})
	if s, err = httpin.New(gw, httpin.Options{Logger: log, Passthrough: passthrough}); err != nil {
		t.Fatal(err)
	}
	w = httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("MOVE", "/v1/shelves/s1/books/b1", strings.NewReader(`{"destinationShelf":"s2"}`)))
	if want := []string{`MOVE /v1/shelves/s1/books/b1 {"destinationShelf":"s2"}`}; w.Code != http.StatusTeapot || !cmp.Equal(passed, want) {
		t.Errorf("shadow route without legacy gRPC = %d, passthrough got %q; want 418 and %q", w.Code, passed, want)
	}
}
