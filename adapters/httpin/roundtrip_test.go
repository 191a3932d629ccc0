package httpin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/figway/figway/adapters/httpin"
	tv1 "github.com/figway/figway/gen/figway/testapi/v1"
)

// everything is an Everything in canonical protojson: every field kind,
// as protojson renders it, so that what comes back must equal it.
const everything = `{
  "i32": -7, "i64": "-9007199254740993", "u32": 4294967295, "u64": "18446744073709551615",
  "s32": -32, "s64": "-64", "f32": 32, "f64": "64", "sf32": -32, "sf64": "-64",
  "flt": 1.5, "dbl": -2.25, "flag": true, "text": "héllo \"wörld\"\n", "data": "AAEC/w==",
  "genre": "GENRE_HISTORY",
  "nested": {"value": "a", "child": {"value": "b", "child": {}}},
  "i64s": ["1", "-2", "3"],
  "nesteds": [{"value": "x"}, {}],
  "genres": ["GENRE_FICTION", "GENRE_UNSPECIFIED"],
  "byName": {"k": {"value": "v"}, "": {}},
  "byNumber": {"-1": "minus one", "2": "two"},
  "byFlag": {"true": "GENRE_SCIENCE", "false": "GENRE_UNSPECIFIED"},
  "choiceNested": {"value": "chosen"},
  "maybe": "",
  "at": "2026-11-26T12:34:56.123456789Z",
  "took": "-1.500s",
  "wI32": 0, "wText": "", "wFlag": false, "wDbl": "NaN", "wData": "", "wU64": "0",
  "object": {"a": {"b": [1, "two", null, false]}, "c": {}},
  "value": [1.5, {"x": null}],
  "list": ["a", 2, true, null, {}],
  "any": {"@type": "type.googleapis.com/figway.testapi.v1.Author", "displayName": "A", "aliases": ["B"]},
  "mask": "title,authors.displayName",
  "empty": {},
  "customJsonName": "named"
}`

// TestJSONRoundTrip sends messages of every field kind as JSON, through
// the broker (protobuf on the wire) to a worker that sends them back, and
// requires the answer to equal the request as JSON, and the worker to
// have got exactly the message the JSON describes.
func TestJSONRoundTrip(t *testing.T) {
	b := startBridge(t, strings.Replace(routesTmpl, "max_request_bytes: 4096", "max_request_bytes: 65536", 1), httpin.Options{})
	l := startWorker(t, b.url, map[string]any{})
	for _, tc := range []struct{ name, json string }{
		{"every field kind", everything},
		{"empty", `{}`},
		{"oneof scalar", `{"choiceNumber": "42"}`},
		{"oneof text and zero values in lists", `{"choiceText": "", "i64s": ["0"], "genres": ["GENRE_UNSPECIFIED"]}`},
		{"deep nesting", `{"nested": {"child": {"child": {"child": {"child": {"value": "deep"}}}}}}`},
		{"extreme numbers", `{"i32": 2147483647, "i64": "-9223372036854775808", "flt": 3.4028235e+38, "dbl": "-Infinity", "sf64": "9223372036854775807"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := b.do(t, "POST", "/v1/echo", tc.json, nil)
			if resp.status != 200 {
				t.Fatalf("POST /v1/echo = %d %s; want 200", resp.status, resp.body)
			}
			if diff := cmp.Diff(jsonValue(t, []byte(tc.json)), jsonValue(t, resp.body)); diff != "" {
				t.Errorf("JSON after the round trip (-sent +got):\n%s", diff)
			}
			want := new(tv1.Everything)
			if err := protojsonUnmarshal(tc.json, want); err != nil {
				t.Fatal(err)
			}
			select {
			case s := <-l.got:
				if diff := cmp.Diff(&tv1.EchoRequest{Everything: want}, s.req, protocmp.Transform(), cmpopts.EquateNaNs()); diff != "" {
					t.Errorf("worker's message (-want +got):\n%s", diff)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("worker got no request")
			}
		})
	}
}

// TestOptions proves the marshaling options: proto names, unpopulated
// fields, and unknown fields discarded instead of refused.
func TestOptions(t *testing.T) {
	b := startBridge(t, routesTmpl, httpin.Options{UseProtoNames: true, EmitUnpopulated: true, DiscardUnknown: true})
	l := startWorker(t, b.url, map[string]any{})
	l.replies["DeleteBook"] = &tv1.DeleteBookResponse{Name: book}
	resp := b.do(t, "DELETE", "/v1/shelves/s1/books/b1?etag=e&bogus=1", "", nil)
	if diff := cmp.Diff(jsonValue(t, []byte(`{"name":"shelves/s1/books/b1","deleted":false}`)), jsonValue(t, resp.body)); diff != "" || resp.status != 200 {
		t.Errorf("DELETE with an unknown query parameter = %d; answer (-want +got):\n%s", resp.status, diff)
	}
	<-l.got
	l.replies["TagBook"] = &tv1.Book{Name: book, PageCount: 1}
	resp = b.do(t, "POST", "/v1/shelves/s1/books/b1:tag", `["a"]`, nil)
	if !strings.Contains(string(resp.body), `"page_count":"1"`) || !strings.Contains(string(resp.body), `"read_time":null`) {
		t.Errorf("answer with UseProtoNames and EmitUnpopulated = %s; want page_count and read_time: null", resp.body)
	}
	<-l.got
	resp = b.do(t, "POST", "/v1/shelves/s1/books", `{"title":"t","titel":"typo"}`, nil)
	if resp.status != 200 {
		t.Errorf("POST with an unknown body field and DiscardUnknown = %d %s; want 200", resp.status, resp.body)
	}
	<-l.got
}

// TestForwardedHeaders proves that only the route's allow-list reaches
// the message, and never a header the Connection header makes hop-by-hop
// or one that RabbitMQ reads as routing keys.
func TestForwardedHeaders(t *testing.T) {
	b := startBridge(t, strings.Replace(routesTmpl, "forward_headers: [x-tenant-id]", "forward_headers: [x-tenant-id, x-request-id]", 1), httpin.Options{})
	l := startWorker(t, b.url, map[string]any{})
	b.do(t, "GET", "/v1/shelves/s1/books/b1", "", map[string]string{
		"X-Tenant-Id": "acme", "X-Request-Id": "r-1", "Connection": "X-Request-Id",
		"CC": "other.key", "BCC": "secret.key", "X-Secret": "not forwarded", "Grpc-Timeout": "5S",
	})
	s := <-l.got
	if diff := cmp.Diff(map[string][]string{"x-tenant-id": {"acme"}}, s.metadata); diff != "" {
		t.Errorf("metadata on the message (-want +got):\n%s", diff)
	}
}

// TestHTTPOverrideAndReload proves a route's http: override replaces the
// descriptor's rule, and that SetTable swaps the bindings with the table.
func TestHTTPOverrideAndReload(t *testing.T) {
	routes := strings.Replace(routesTmpl,
		"routing_key: library.delete}",
		`routing_key: library.delete, http: {post: "/v1/{name=shelves/*/books/*}:delete"}}`, 1)
	b := startBridge(t, routes, httpin.Options{})
	l := startWorker(t, b.url, map[string]any{})
	run(t, b, l, []call{{
		name: "override", verb: "POST", path: "/v1/shelves/s1/books/b1:delete", wantMethod: svc + "DeleteBook",
		wantReq: &tv1.DeleteBookRequest{Name: book}, wantStatus: 200, wantJSON: `{}`,
	}, {
		name: "the descriptor's rule is gone", verb: "DELETE", path: "/v1/shelves/s1/books/b1",
		wantStatus: 405, wantContains: "not allowed",
	}})

	// Reload without SearchBooks: its paths answer 404, the rest stays.
	cfg, _ := loadConfig(t, strings.Replace(routesTmpl, "  - {method: figway.testapi.v1.LibraryService/SearchBooks", "  # ", 1), b.url)
	table, err := cfg.Table(b.gw.Table())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.srv.SetTable(table); err != nil {
		t.Fatalf("SetTable: %v", err)
	}
	b.gw.SetTable(table)
	run(t, b, l, []call{{
		name: "removed route", verb: "GET", path: "/v1/books:search", wantStatus: 404, wantContains: "no REST binding",
	}, {
		name: "descriptor rule back after the override went", verb: "DELETE", path: "/v1/shelves/s1/books/b1",
		wantMethod: svc + "DeleteBook", wantReq: &tv1.DeleteBookRequest{Name: book}, wantStatus: 200, wantJSON: `{}`,
	}})
}
