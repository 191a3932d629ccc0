package httpin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/figway/figway/adapters/httpin"
	"github.com/figway/figway/gateway"
	tv1 "github.com/figway/figway/gen/figway/testapi/v1"
	"github.com/figway/figway/wire"
)

// cannedPublisher answers every call at once with the reply set for its
// method, in the request's content type, and takes every event: it stands
// in for the broker where only figway's own transcoding is measured or
// fuzzed. Nothing here claims broker behaviour.
type cannedPublisher struct {
	replies map[string][]byte // method → reply body; missing = empty message
}

func (p cannedPublisher) Call(ctx context.Context, _, _ string, req *wire.Request) (*gateway.Reply, error) {
	body := p.replies[req.Method]
	if b, ok := ctx.Value(replyKey{}).([]byte); ok {
		body = b
	}
	return &gateway.Reply{Body: body, ContentType: req.ContentType}, nil
}

// replyKey marks a context whose value is the reply of every call.
type replyKey struct{}

func (cannedPublisher) Publish(context.Context, string, string, *wire.Request) error { return nil }

var _ gateway.Publisher = cannedPublisher{}

// transcoder is the REST ingress over a canned publisher, served in
// process.
func transcoder(tb testing.TB, replies map[string][]byte) *httpin.Server {
	tb.Helper()
	cfg, _ := loadConfig(tb, strings.Replace(routesTmpl, "max_request_bytes: 4096", "max_request_bytes: 65536", 1), "amqp://guest:guest@127.0.0.1:1/")
	table, err := cfg.Table(nil)
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	gw := gateway.New(gateway.Options{Publisher: cannedPublisher{replies}, Table: table, Logger: log})
	s, err := httpin.New(gw, httpin.Options{MaxRequestBytes: cfg.Server.MaxRequestBytes, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

var fuzzVerbs = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "MOVE", "HEAD"}

// FuzzTranscode sends arbitrary paths, queries and bodies through the
// whole REST ingress, with arbitrary reply bytes from the service: it must
// never panic, answer only with the statuses of docs/errors.md, and always
// with JSON.
func FuzzTranscode(f *testing.F) {
	f.Add(uint8(0), "/v1/shelves/s1/books/b1", "read_mask=title&includeReviews=true", []byte(nil), []byte(nil))
	f.Add(uint8(0), "/v1/books:search", "genres=GENRE_FICTION&genres=2&labels[a]=b&filter.years=1&available=true", []byte(nil), []byte(`{"books":[{}]}`))
	f.Add(uint8(1), "/v1/echo", "", []byte(everything), []byte("\x0a\x02\x08\x01"))
	f.Add(uint8(1), "/v1/shelves/s1/books/b1:tag", "", []byte(`["a","b"]`), []byte("\xff"))
	f.Add(uint8(3), "/v1/shelves/s1/books/b1", "update_mask=title", []byte(`{"title":"x"}`), []byte(nil))
	f.Add(uint8(5), "/v1/shelves/s%2F1/books/b1", "", []byte(`{"destinationShelf":"s"}`), []byte(nil))
	f.Add(uint8(0), "/v1/shelves/s7/stats/GENRE_SCIENCE", "shelf.theme=x", []byte(nil), []byte("\x0a\x05\x0a\x01a\x10\x01"))
	s := transcoder(f, nil)
	f.Fuzz(func(t *testing.T, verb uint8, path, query string, body, reply []byte) {
		u := &url.URL{Path: path, RawQuery: query}
		r, err := http.NewRequest(fuzzVerbs[int(verb)%len(fuzzVerbs)], "http://figway"+u.RequestURI(), bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), replyKey{}, reply)))
		switch w.Code {
		case 200, 202, 400, 404, 405, 413, 502:
		default:
			t.Fatalf("%s %s: status %d: %s", r.Method, r.URL, w.Code, w.Body)
		}
		if r.Method != "HEAD" && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s: %d answer is not JSON: %q", r.Method, r.URL, w.Code, w.Body)
		}
	})
}

// BenchmarkTranscode measures the REST ingress without the broker: match,
// decode JSON/path/query into a dynamic message, encode for the wire,
// decode the reply and render it as JSON.
func BenchmarkTranscode(b *testing.B) {
	dune := &tv1.Book{Name: "shelves/s1/books/b1", Title: "Dune", Genre: tv1.Genre_GENRE_FICTION,
		Authors: []*tv1.Author{{DisplayName: "Frank Herbert"}}, Labels: map[string]string{"lang": "en"}, PageCount: 412}
	bookBytes, _ := proto.Marshal(dune)
	searchJSON, _ := protojson.Marshal(&tv1.SearchBooksResponse{Books: []*tv1.Book{dune, dune}, NextPageToken: "p2"})
	echo := new(tv1.Everything)
	if err := protojson.Unmarshal([]byte(everything), echo); err != nil {
		b.Fatal(err)
	}
	echoBytes, _ := proto.Marshal(&tv1.EchoResponse{Everything: echo})
	s := transcoder(b, map[string][]byte{
		svc + "GetBook":     bookBytes,
		svc + "CreateBook":  bookBytes,
		svc + "SearchBooks": searchJSON,
		svc + "Echo":        echoBytes,
	})
	for _, bc := range []struct {
		name, verb, target, body string
	}{
		{"GetBook/path+query", "GET", "/v1/shelves/s1/books/b1?read_mask=title&includeReviews=true", ""},
		{"CreateBook/body-field+path+query", "POST", "/v1/shelves/s1/books?request_id=r-1",
			`{"title":"Dune","authors":[{"displayName":"Frank Herbert"}],"genre":"GENRE_FICTION","readTime":"3600s","rating":5}`},
		{"SearchBooks/14-query-params/json-route", "GET", "/v1/books:search?query=dune&genres=GENRE_FICTION&genres=2&tags=a&tags=b" +
			"&published_after=2020-01-01T00:00:00Z&maxReadTime=90s&min_rating=4&filter.author=Herbert&filter.years=1965" +
			"&page_size=10&labels%5Blang%5D=en&available=false&min_pages=100", ""},
		{"Echo/every-field-kind", "POST", "/v1/echo", everything},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := strings.NewReader(bc.body)
			r := httptest.NewRequest(bc.verb, bc.target, body)
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			for b.Loop() {
				body.Reset(bc.body)
				r.Body = io.NopCloser(body)
				clear(w.h)
				w.code = 0
				s.ServeHTTP(w, r)
				if w.code != 200 {
					b.Fatalf("%s %s = %d", bc.verb, bc.target, w.code)
				}
			}
		})
	}
}

// discard is a ResponseWriter that keeps only the status.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }
