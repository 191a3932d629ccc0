package httpin_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/figway/figway/adapters/httpin"
	"github.com/figway/figway/gateway"
)

func protojsonUnmarshal(s string, m proto.Message) error { return protojson.Unmarshal([]byte(s), m) }

// newServer builds a Server for routes without a broker: for what is
// decided before any call.
func newServer(t *testing.T, routes string, o httpin.Options) (*httpin.Server, error) {
	t.Helper()
	cfg, _ := loadConfig(t, routes, "amqp://guest:guest@127.0.0.1:1/")
	table, err := cfg.Table(nil)
	if err != nil {
		t.Fatal(err)
	}
	gw := gateway.New(gateway.Options{Table: table, Logger: slog.New(slog.DiscardHandler)})
	o.Logger = slog.New(slog.DiscardHandler)
	return httpin.New(gw, o)
}

// TestBindings lists what the test API's table serves: every rule and
// additional binding of the routed methods.
func TestBindings(t *testing.T) {
	s, err := newServer(t, routesTmpl, httpin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET /v1/{name=shelves/*/books/*} → figway.testapi.v1.LibraryService/GetBook",
		"POST /v1/{parent=shelves/*}/books → figway.testapi.v1.LibraryService/CreateBook",
		"PATCH /v1/{book.name=shelves/*/books/*} → figway.testapi.v1.LibraryService/UpdateBook",
		"PUT /v1/{book.name=shelves/*/books/*} → figway.testapi.v1.LibraryService/UpdateBook",
		"DELETE /v1/{name=shelves/*/books/*} → figway.testapi.v1.LibraryService/DeleteBook",
		"GET /v1/books:search → figway.testapi.v1.LibraryService/SearchBooks",
		"POST /v1/books:search → figway.testapi.v1.LibraryService/SearchBooks",
		"MOVE /v1/{name=shelves/*/books/*} → figway.testapi.v1.LibraryService/MoveBook",
		"POST /v1/{name=shelves/*/books/*}:tag → figway.testapi.v1.LibraryService/TagBook",
		"GET /v1/shelves/{shelf.id}/stats → figway.testapi.v1.LibraryService/GetShelfStats",
		"GET /v1/shelves/{shelf.id}/stats/{genre} → figway.testapi.v1.LibraryService/GetShelfStats",
		"POST /v1/echo → figway.testapi.v1.LibraryService/Echo",
		"POST /v1/notifications → figway.testapi.v1.LibraryService/Notify",
	}
	if diff := cmp.Diff(want, s.Bindings()); diff != "" {
		t.Errorf("Bindings() (-want +got):\n%s", diff)
	}
}

// TestNewRefusesBadBindings proves that rules which cannot be served are
// refused when the table is built, every one of them with its method.
func TestNewRefusesBadBindings(t *testing.T) {
	routes := strings.NewReplacer(
		"routing_key: library.move}", `routing_key: library.move, http: {get: "/v1/{name=shelves/*/books/*}"}}`,
		"routing_key: library.tag}", `routing_key: library.tag, http: {post: "/v1/echo", body: "*"}}`,
	).Replace(routesTmpl)
	_, err := newServer(t, routes, httpin.Options{})
	if err == nil {
		t.Fatal("New accepted two methods on one path and twice two methods on one path")
	}
	for _, want := range []string{"MoveBook: GET /v1/{name=shelves/*/books/*} is bound by figway.testapi.v1.LibraryService/GetBook", "Echo: POST /v1/echo is bound by figway.testapi.v1.LibraryService/TagBook"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New error = %v; want it to mention %q", err, want)
		}
	}
}

// TestPassthrough proves that what no binding takes — an unknown path, or
// another verb on a bound path — goes to the passthrough (the legacy
// service) when there is one.
func TestPassthrough(t *testing.T) {
	legacy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Legacy", "yes")
		w.WriteHeader(http.StatusTeapot)
	})
	s, err := newServer(t, routesTmpl, httpin.Options{Passthrough: legacy})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ verb, path string }{
		{"GET", "/v1/orders"},        // no binding
		{"GET", "/v1/notifications"}, // only POST is bound
		{"DELETE", "/v1/books:search"},
	} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(tc.verb, tc.path, nil))
		if w.Code != http.StatusTeapot || w.Header().Get("X-Legacy") != "yes" {
			t.Errorf("%s %s = %d; want the passthrough's 418", tc.verb, tc.path, w.Code)
		}
	}
}
