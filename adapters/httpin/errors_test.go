package httpin_test

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/adapters/httpin"
)

func statusErr(c codes.Code, msg string) error { return status.Error(c, msg) }

// TestClientErrors proves each 4xx answer: the status, a google.rpc.Status
// body whose message names what was wrong, and nothing published.
func TestClientErrors(t *testing.T) {
	b := startBridge(t, routesTmpl, httpin.Options{})
	l := startWorker(t, b.url, map[string]any{})
	bad := func(name, verb, path, body string, header map[string]string, want int, contains string) call {
		return call{name: name, verb: verb, path: path, body: body, header: header, wantStatus: want, wantContains: contains}
	}
	run(t, b, l, []call{
		bad("malformed JSON", "POST", "/v1/echo", `{"i32":`, nil, 400, `"code":3`),
		bad("unknown body field", "POST", "/v1/shelves/s1/books", `{"titel":"x"}`, nil, 400, "titel"),
		bad("wrong JSON type", "POST", "/v1/shelves/s1/books", `{"pageCount":"many"}`, nil, 400, "pageCount"),
		bad("body field followed by another field", "POST", "/v1/shelves/s1/books/b1:tag", `["x"], "name": "evil"`, nil, 400, "body"),
		bad("unknown query parameter", "GET", "/v1/shelves/s1/books/b1?bogus=1", "", nil, 400, "bogus"),
		bad("bad integer in the query", "GET", "/v1/books:search?page_size=ten", "", nil, 400, "page_size"),
		bad("bad enum in the query", "GET", "/v1/books:search?genres=GENRE_NOPE", "", nil, 400, "genres"),
		bad("bad timestamp in the query", "GET", "/v1/books:search?published_after=yesterday", "", nil, 400, "published_after"),
		bad("two values for a singular field", "GET", "/v1/books:search?query=a&query=b", "", nil, 400, "query"),
		bad("bad enum in the path", "GET", "/v1/shelves/s7/stats/GENRE_NOPE", "", nil, 400, "genre"),
		bad("bad Grpc-Timeout unit", "GET", "/v1/shelves/s1/books/b1", "", map[string]string{"Grpc-Timeout": "1x"}, 400, "grpc-timeout"),
		bad("Grpc-Timeout of 9 digits", "GET", "/v1/shelves/s1/books/b1", "", map[string]string{"Grpc-Timeout": "123456789S"}, 400, "grpc-timeout"),
		bad("unknown path", "GET", "/v2/nothing", "", nil, 404, `"code":5`),
		bad("path of a method without a route", "GET", "/v1/orders/o-1", "", nil, 404, `"code":5`),
		bad("wrong verb on a known path", "GET", "/v1/notifications", "", nil, 405, "method not allowed"),
		bad("body over max_request_bytes", "POST", "/v1/echo", `{"text":"`+strings.Repeat("x", 5000)+`"}`, nil, 413, `"code":8`),
	})
	select {
	case s := <-l.got:
		t.Errorf("worker got %s %v; want no request from a refused call", s.method, s.req)
	default:
	}
}

// TestBodyLimitWithoutLength proves that a chunked body over the limit is
// refused with 413 after limit+1 bytes, without reading the rest.
func TestBodyLimitWithoutLength(t *testing.T) {
	b := startBridge(t, routesTmpl, httpin.Options{})
	sent := &countingReader{n: 64 << 20} // far more than the server may read
	req, err := http.NewRequest("POST", b.base+"/v1/echo", sent)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST with a 64 MiB chunked body: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	t.Logf("413 after %v, %d bytes sent", time.Since(start), sent.read.Load())
	if resp.StatusCode != 413 {
		t.Errorf("status = %d %s; want 413", resp.StatusCode, body)
	}
	if n := sent.read.Load(); n > 16<<20 {
		t.Errorf("client could send %d bytes; want the server to stop reading near the limit of 4096", n)
	}
}

// countingReader yields n bytes of '[' and counts what was taken; the
// client's transport may still be reading it when the answer is in.
type countingReader struct {
	n    int64
	read atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	done := r.read.Load()
	if done >= r.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), r.n-done)
	for i := range k {
		p[i] = '['
	}
	r.read.Add(k)
	return int(k), nil
}

// TestServiceStatusMapping proves that a status the worker replies with
// reaches the REST caller with grpc-gateway's HTTP status and the status's
// details, and that a deadline becomes 504.
func TestServiceStatusMapping(t *testing.T) {
	b := startBridge(t, routesTmpl, httpin.Options{})
	l := startWorker(t, b.url, map[string]any{})
	notFound, _ := status.New(codes.NotFound, "no book shelves/s1/books/b404").
		WithDetails(&errdetails.ResourceInfo{ResourceType: "book", ResourceName: "shelves/s1/books/b404"})
	get := func(name string, reply any, want int, body string) call {
		return call{name: name, verb: "GET", path: "/v1/shelves/s1/books/b404", wantMethod: svc + "GetBook",
			reply: reply, wantStatus: want, wantJSON: body}
	}
	run(t, b, l, []call{
		get("not found with details", notFound.Err(), 404, `{"code":5,"message":"no book shelves/s1/books/b404","details":[
			{"@type":"type.googleapis.com/google.rpc.ResourceInfo","resourceType":"book","resourceName":"shelves/s1/books/b404"}]}`),
		get("failed precondition", statusErr(codes.FailedPrecondition, "shelved"), 400, `{"code":9,"message":"shelved"}`),
		get("permission denied", statusErr(codes.PermissionDenied, "no"), 403, `{"code":7,"message":"no"}`),
		get("unavailable", statusErr(codes.Unavailable, "later"), 503, `{"code":14,"message":"later"}`),
		get("resource exhausted", statusErr(codes.ResourceExhausted, "quota"), 429, `{"code":8,"message":"quota"}`),
	})
	for range 5 {
		<-l.got
	}

	l.replies["GetBook"] = 10 * time.Second // the worker sits on the call
	start := time.Now()
	resp := b.do(t, "GET", "/v1/shelves/s1/books/b1", "", map[string]string{"Grpc-Timeout": "300m"})
	took := time.Since(start)
	t.Logf("Grpc-Timeout 300m: %d after %v: %s", resp.status, took, resp.body)
	if resp.status != 504 {
		t.Errorf("status = %d; want 504", resp.status)
	}
	if took > 3*time.Second {
		t.Errorf("504 after %v; want soon after the caller's 300ms, far before the route's 5s", took)
	}
}
