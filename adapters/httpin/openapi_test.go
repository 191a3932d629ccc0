package httpin_test

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	vconfig "github.com/pb33f/libopenapi-validator/config"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/adapters/httpin"
)

// openAPIOf returns the document of routes over the test API.
func openAPIOf(t *testing.T, routes string, o httpin.Options) []byte {
	t.Helper()
	cfg, _ := loadConfig(t, routes, "amqp://guest:guest@127.0.0.1:1/")
	table, err := cfg.Table(nil)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := httpin.OpenAPI(table, o)
	if err != nil {
		t.Fatalf("OpenAPI: %v", err)
	}
	return doc
}

// newValidator parses doc and checks it against the OpenAPI 3.1 schema
// with libopenapi-validator.
func newValidator(t *testing.T, doc []byte) validator.Validator {
	t.Helper()
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		t.Fatalf("libopenapi.NewDocument: %v", err)
	}
	// Regex path matching only: the validator's radix tree takes "b1:tag"
	// for {book} and then misses the {book}:tag template of a custom verb.
	v, errs := validator.NewValidator(d, vconfig.DisablePathTree())
	if len(errs) > 0 {
		t.Fatalf("NewValidator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("document: %s: %s", e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  at %s (%s): %s", se.FieldPath, se.KeywordLocation, se.Reason)
			}
		}
		t.FailNow()
	}
	return v
}

// jsonPath walks a decoded JSON document by keys.
func jsonPath(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for i, k := range keys {
		m, ok := v.(map[string]any)
		if !ok || m[k] == nil {
			t.Fatalf("no %s in the document", strings.Join(keys[:i+1], " › "))
		}
		v = m[k]
	}
	return v
}

// paramNames returns "in:name" of an operation's parameters.
func paramNames(t *testing.T, op any) []string {
	t.Helper()
	var out []string
	ps, _ := op.(map[string]any)["parameters"].([]any)
	for _, p := range ps {
		m := p.(map[string]any)
		out = append(out, m["in"].(string)+":"+m["name"].(string))
	}
	return out
}

// TestOpenAPIDocument checks the document of the test API: valid OpenAPI
// 3.1, every rule shape written as the ingress serves it.
func TestOpenAPIDocument(t *testing.T) {
	raw := openAPIOf(t, routesTmpl, httpin.Options{Version: "v9"})
	newValidator(t, raw)
	doc := jsonValue(t, raw)

	if got := jsonPath(t, doc, "openapi"); got != "3.1.0" {
		t.Errorf("openapi = %v; want 3.1.0", got)
	}
	var paths []string
	for p, item := range jsonPath(t, doc, "paths").(map[string]any) {
		for verb := range item.(map[string]any) {
			paths = append(paths, verb+" "+p)
		}
	}
	slices.Sort(paths)
	want := []string{
		"delete /v1/shelves/{shelf}/books/{book}",
		"get /v1/books:search",
		"get /v1/shelves/{shelf.id}/stats",
		"get /v1/shelves/{shelf.id}/stats/{genre}",
		"get /v1/shelves/{shelf}/books/{book}",
		"patch /v1/shelves/{shelf}/books/{book}",
		"post /v1/books:search",
		"post /v1/echo",
		"post /v1/notifications",
		"post /v1/shelves/{shelf}/books",
		"post /v1/shelves/{shelf}/books/{book}:tag",
		"put /v1/shelves/{shelf}/books/{book}",
		"x-additionalOperations /v1/shelves/{shelf}/books/{book}",
	}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}

	t.Run("custom verb", func(t *testing.T) {
		op := jsonPath(t, doc, "paths", "/v1/shelves/{shelf}/books/{book}", "x-additionalOperations", "MOVE")
		if id := jsonPath(t, op, "operationId"); id != "LibraryService_MoveBook" {
			t.Errorf("MOVE operationId = %v", id)
		}
	})
	t.Run("additional binding", func(t *testing.T) {
		get := jsonPath(t, doc, "paths", "/v1/books:search", "get")
		post := jsonPath(t, doc, "paths", "/v1/books:search", "post")
		if a, b := jsonPath(t, get, "operationId"), jsonPath(t, post, "operationId"); a != "LibraryService_SearchBooks" || b != "LibraryService_SearchBooks_2" {
			t.Errorf("operationIds = %v, %v", a, b)
		}
		// GET: every field from the query, nested messages by dotted
		// path, maps left out. POST body "*": no query.
		got := paramNames(t, get)
		for _, p := range []string{"query:query", "query:genres", "query:publishedAfter", "query:maxReadTime",
			"query:minRating", "query:filter.author", "query:filter.years", "query:pageSize", "query:cursor"} {
			if !slices.Contains(got, p) {
				t.Errorf("GET /v1/books:search parameters %v; want %s", got, p)
			}
		}
		if slices.Contains(got, "query:labels") {
			t.Errorf("GET /v1/books:search has the map labels as a query parameter")
		}
		if got := paramNames(t, post); len(got) != 0 {
			t.Errorf("POST /v1/books:search (body *) parameters = %v; want none", got)
		}
		if ref := jsonPath(t, post, "requestBody", "content", "application/json", "schema", "$ref"); ref != "#/components/schemas/figway.testapi.v1.SearchBooksRequest" {
			t.Errorf("POST body = %v", ref)
		}
	})
	t.Run("path template with a pattern, body field", func(t *testing.T) {
		op := jsonPath(t, doc, "paths", "/v1/shelves/{shelf}/books", "post")
		if got, want := paramNames(t, op), []string{"path:shelf", "query:requestId"}; !cmp.Equal(got, want) {
			t.Errorf("CreateBook parameters = %v; want %v", got, want)
		}
		if ref := refOf(jsonPath(t, op, "requestBody", "content", "application/json", "schema")); ref != "#/components/schemas/figway.testapi.v1.Book" {
			t.Errorf("CreateBook body = %v; want the book field's message", ref)
		}
	})
	t.Run("response_body", func(t *testing.T) {
		s := jsonPath(t, doc, "paths", "/v1/shelves/{shelf.id}/stats", "get", "responses", "200", "content", "application/json", "schema").(map[string]any)
		inner := s
		if alts, ok := s["anyOf"].([]any); ok {
			inner = alts[0].(map[string]any)
		}
		if inner["type"] != "object" || jsonPath(t, inner, "additionalProperties", "type") != "string" {
			t.Errorf("GetShelfStats 200 schema = %v; want the counts map of int64 strings", s)
		}
	})
	t.Run("event", func(t *testing.T) {
		op := jsonPath(t, doc, "paths", "/v1/notifications", "post", "responses")
		jsonPath(t, op, "202", "headers", httpin.HeaderEventID)
		if _, ok := op.(map[string]any)["200"]; ok {
			t.Errorf("event route documents a 200 too")
		}
		if ref := jsonPath(t, doc, "components", "responses", "Error", "content", "application/json", "schema", "$ref"); ref != "#/components/schemas/google.rpc.Status" {
			t.Errorf("error body = %v", ref)
		}
	})
	t.Run("comments", func(t *testing.T) {
		op := jsonPath(t, doc, "paths", "/v1/shelves/{shelf}/books", "post")
		if d := jsonPath(t, op, "description").(string); !strings.Contains(d, "the body is one field of the request") {
			t.Errorf("CreateBook description = %q; want the proto comment", d)
		}
		if d := jsonPath(t, doc, "components", "schemas", "figway.testapi.v1.Genre", "description").(string); !strings.Contains(d, "Genre of a book") {
			t.Errorf("Genre description = %q; want the proto comment", d)
		}
	})
	t.Run("json settings", func(t *testing.T) {
		book := jsonPath(t, doc, "components", "schemas", "figway.testapi.v1.Book", "properties").(map[string]any)
		if jsonPath(t, book, "pageCount", "type") != "string" || jsonPath(t, book, "publishedAt", "format") != "date-time" {
			t.Errorf("Book properties = %v; want pageCount as an int64 string, publishedAt a date-time", book)
		}
		if genre := jsonPath(t, book, "genre"); refOf(genre) != "#/components/schemas/figway.testapi.v1.Genre" {
			t.Errorf("Book.genre = %v; want the Genre enum", genre)
		}
		enum := jsonPath(t, doc, "components", "schemas", "figway.testapi.v1.Genre", "enum").([]any)
		if enum[1] != "GENRE_FICTION" {
			t.Errorf("Genre enum = %v; want the value names", enum)
		}
		proto := jsonValue(t, openAPIOf(t, routesTmpl, httpin.Options{UseProtoNames: true}))
		book = jsonPath(t, proto, "components", "schemas", "figway.testapi.v1.Book", "properties").(map[string]any)
		if _, ok := book["page_count"]; !ok {
			t.Errorf("with proto names, Book properties = %v; want page_count", book)
		}
	})
}

// refOf returns the $ref of a schema, or of its only anyOf member (a
// reference with a description of its own).
func refOf(s any) string {
	m, _ := s.(map[string]any)
	if alts, ok := m["anyOf"].([]any); ok && len(alts) == 1 {
		m, _ = alts[0].(map[string]any)
	}
	ref, _ := m["$ref"].(string)
	return ref
}

// check validates every request a test sends and every answer figway gives
// against the OpenAPI document that figway serves: a request the document
// allows must be taken (not refused as malformed or unrouted), and an
// answer must match the document's schema for it.
type check struct {
	v       validator.Validator
	refused map[string]bool // "VERB path" of requests the document does not allow
}

func (c *check) request(t *testing.T, req *http.Request, body string, resp response) {
	t.Helper()
	clone := func() *http.Request {
		r := req.Clone(req.Context())
		r.Body = io.NopCloser(strings.NewReader(body))
		return r
	}
	ok, errs := c.v.ValidateHttpRequest(clone())
	key := req.Method + " " + req.URL.RequestURI()
	if !ok {
		c.refused[key] = true
		for _, e := range errs {
			t.Logf("the document refuses %s: %s", key, e.Message)
		}
		return
	}
	unrouted := resp.status == http.StatusNotFound && strings.Contains(string(resp.body), "no REST binding")
	switch {
	case unrouted, resp.status == http.StatusBadRequest, resp.status == http.StatusMethodNotAllowed, resp.status == http.StatusNotImplemented:
		t.Errorf("%s: the document allows it, figway answered %d %s", key, resp.status, resp.body)
	}
	hr := &http.Response{StatusCode: resp.status, Header: resp.header, Body: io.NopCloser(bytes.NewReader(resp.body)), Request: clone()}
	if ok, errs := c.v.ValidateHttpResponse(clone(), hr); !ok {
		for _, e := range errs {
			t.Errorf("%s: answer %d %s does not match the document: %s: %s", key, resp.status, resp.body, e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  at %s (%s): %s", se.FieldPath, se.KeywordLocation, se.Reason)
			}
		}
	}
}

// TestOpenAPIMatchesTraffic runs the rule-shape calls through the broker
// and checks each request and answer against the document served on
// /openapi.json.
func TestOpenAPIMatchesTraffic(t *testing.T) {
	b := startBridge(t, routesTmpl, httpin.Options{OpenAPIPath: "/openapi.json"})
	resp := b.do(t, "GET", "/openapi.json", "", nil)
	if resp.status != 200 || resp.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json = %d %s", resp.status, resp.header.Get("Content-Type"))
	}
	b.check = &check{v: newValidator(t, resp.body), refused: map[string]bool{}}
	l := startWorker(t, b.url, map[string]any{})
	run(t, b, l, ruleShapeCalls())
	// An error answer is a google.rpc.Status the document describes; an
	// event is answered 202.
	l.replies["GetBook"] = status.Error(codes.NotFound, "no such book")
	if resp := b.do(t, "GET", "/v1/shelves/s1/books/missing", "", nil); resp.status != http.StatusNotFound {
		t.Errorf("GET a book the worker does not have = %d %s; want 404", resp.status, resp.body)
	}
	if resp := b.do(t, "POST", "/v1/notifications", `{"topic":"t"}`, nil); resp.status != http.StatusAccepted {
		t.Errorf("POST /v1/notifications = %d %s; want 202", resp.status, resp.body)
	}

	// What the document does not allow: OpenAPI 3.1 has no custom verbs,
	// and it names enum values, where figway takes numbers too.
	want := map[string]bool{
		"MOVE /v1/shelves/s1/books/b1": true,
		// libopenapi-validator v0.16.2 matches no path template whose
		// segment is a variable with a suffix ({book}:tag), which OpenAPI
		// allows: a limit of the validator, not of the document.
		"POST /v1/shelves/s1/books/b1:tag": true,
		"GET /v1/shelves/s7/stats/3":       true,
		"POST /v1/books:search":            true, // genres: ["GENRE_SCIENCE", 3]
	}
	for k := range b.check.refused {
		if strings.HasPrefix(k, "GET /v1/books:search?") {
			want[k] = true // genres=2
		}
	}
	if diff := cmp.Diff(want, b.check.refused); diff != "" {
		t.Errorf("requests the document refuses (-want +got):\n%s", diff)
	}
}

// TestOpenAPIFollowsReload serves the document of the bindings of the
// table set last, and nothing when the path is not set.
func TestOpenAPIFollowsReload(t *testing.T) {
	b := startBridge(t, routesTmpl, httpin.Options{OpenAPIPath: "/api/openapi.json"})
	paths := func() int {
		resp := b.do(t, "GET", "/api/openapi.json", "", nil)
		if resp.status != 200 {
			t.Fatalf("GET /api/openapi.json = %d", resp.status)
		}
		return len(jsonPath(t, jsonValue(t, resp.body), "paths").(map[string]any))
	}
	if n := paths(); n != 8 {
		t.Errorf("paths before the reload = %d; want 8", n)
	}
	fewer := strings.Replace(routesTmpl, "  - {method: figway.testapi.v1.LibraryService/Echo, exchange: library, routing_key: library.echo}\n", "", 1)
	cfg, _ := loadConfig(t, fewer, b.url)
	table, err := cfg.Table(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.srv.SetTable(table); err != nil {
		t.Fatal(err)
	}
	if n := paths(); n != 7 {
		t.Errorf("paths after a reload without Echo = %d; want 7", n)
	}
	if resp := b.do(t, "GET", "/openapi.json", "", nil); resp.status != 404 {
		t.Errorf("GET /openapi.json (another path set) = %d; want 404", resp.status)
	}
}
