package httpin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/figway/figway/adapters/httpin"
	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	testapiv1 "github.com/figway/figway/gen/figway/testapi/v1"
	"github.com/figway/figway/internal/testing/core"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

// routesTmpl routes every method of the test API to one queue; BROKER and
// DESCRIPTORS are replaced per test. SearchBooks travels as JSON, the
// others as protobuf.
const routesTmpl = `
descriptors: [DESCRIPTORS]
server: {max_request_bytes: 4096}
broker: {url: "BROKER", channels: 2}
defaults:
  timeout: 5s
  forward_headers: [x-tenant-id]
routes:
  - {method: figway.testapi.v1.LibraryService/GetBook, exchange: library, routing_key: library.get}
  - {method: figway.testapi.v1.LibraryService/CreateBook, exchange: library, routing_key: library.create}
  - {method: figway.testapi.v1.LibraryService/UpdateBook, exchange: library, routing_key: library.update}
  - {method: figway.testapi.v1.LibraryService/DeleteBook, exchange: library, routing_key: library.delete}
  - {method: figway.testapi.v1.LibraryService/SearchBooks, exchange: library, routing_key: library.search, encoding: json}
  - {method: figway.testapi.v1.LibraryService/MoveBook, exchange: library, routing_key: library.move}
  - {method: figway.testapi.v1.LibraryService/TagBook, exchange: library, routing_key: library.tag}
  - {method: figway.testapi.v1.LibraryService/GetShelfStats, exchange: library, routing_key: library.stats}
  - {method: figway.testapi.v1.LibraryService/Echo, exchange: library, routing_key: library.echo}
  - {method: figway.testapi.v1.LibraryService/Notify, exchange: library, routing_key: library.notify, pattern: event}
topology:
  exchanges: [{name: library, type: topic}]
  queues: [{name: library.requests, bind: {exchange: library, key: "library.#"}}]
`

// bridge is figway in-process: gateway, AMQP client and the REST ingress
// on a real listener.
type bridge struct {
	url  string // the test's vhost
	base string // http://127.0.0.1:port
	srv  *httpin.Server
	gw   *gateway.Gateway
	path string // of the routes file, for reloads
	// check, if set, validates every request and answer against an
	// OpenAPI document.
	check *check
}

// loadConfig loads routes over the test API's descriptors.
func loadConfig(t testing.TB, routes, brokerURL string) (*config.Config, string) {
	t.Helper()
	return core.Load(t, routes, brokerURL, "testdata/testapi.binpb")
}

func startBridge(t *testing.T, routes string, o httpin.Options) *bridge {
	t.Helper()
	url := rabbitmq.ForTest(t).NewVHost(t)
	running := core.Start(t, routes, url, "testdata/testapi.binpb", nil)
	if o.MaxRequestBytes == 0 {
		o.MaxRequestBytes = running.Config.Server.MaxRequestBytes
	}
	o.Logger = slog.New(slog.DiscardHandler)
	srv, err := httpin.New(running.Gateway, o)
	if err != nil {
		t.Fatalf("httpin.New: %v", err)
	}
	addr := core.Serve(t, func(ctx context.Context, lis net.Listener) error { return srv.Serve(ctx, lis, time.Second) })
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	return &bridge{url: url, base: "http://" + addr, srv: srv, gw: running.Gateway, path: running.Path}
}

// seen is a request as the worker got it.
type seen struct {
	method   string
	req      proto.Message
	metadata map[string][]string
}

// library is the service side: it records each request and answers with
// the reply set for its method (a proto.Message or an error), or echoes
// EchoRequest.everything.
type library struct {
	got     chan seen
	replies map[string]any
}

// startWorker runs a worker with every method of the test API on the
// routes' queue until the test ends. replies is read by the handlers:
// set it before the calls.
func startWorker(t *testing.T, url string, replies map[string]any) *library {
	t.Helper()
	l := &library{got: make(chan seen, 16), replies: replies}
	w := worker.New(worker.Config{
		URL: url, Queue: "library.requests", Concurrency: 8,
		Logger: slog.New(slog.DiscardHandler),
	})
	handle[*testapiv1.GetBookRequest, *testapiv1.Book](w, l, "GetBook")
	handle[*testapiv1.CreateBookRequest, *testapiv1.Book](w, l, "CreateBook")
	handle[*testapiv1.UpdateBookRequest, *testapiv1.Book](w, l, "UpdateBook")
	handle[*testapiv1.DeleteBookRequest, *testapiv1.DeleteBookResponse](w, l, "DeleteBook")
	handle[*testapiv1.SearchBooksRequest, *testapiv1.SearchBooksResponse](w, l, "SearchBooks")
	handle[*testapiv1.MoveBookRequest, *testapiv1.Book](w, l, "MoveBook")
	handle[*testapiv1.TagBookRequest, *testapiv1.Book](w, l, "TagBook")
	handle[*testapiv1.GetShelfStatsRequest, *testapiv1.ShelfStats](w, l, "GetShelfStats")
	handle[*testapiv1.NotifyRequest, *emptypb.Empty](w, l, "Notify")
	worker.Handle(w, svc+"Echo", func(ctx context.Context, req *testapiv1.EchoRequest) (*testapiv1.EchoResponse, error) {
		l.got <- seen{svc + "Echo", req, worker.Metadata(ctx)}
		return &testapiv1.EchoResponse{Everything: req.GetEverything()}, nil
	})
	fault.RunWorker(t, w)
	fault.WaitConsuming(t, w)
	return l
}

const svc = "figway.testapi.v1.LibraryService/"

// handle registers a recording handler for method.
func handle[Req, Resp proto.Message](w *worker.Worker, l *library, method string) {
	worker.Handle(w, svc+method, func(ctx context.Context, req Req) (Resp, error) {
		l.got <- seen{svc + method, req, worker.Metadata(ctx)}
		var zero Resp
		switch r := l.replies[method].(type) {
		case Resp:
			return r, nil
		case error:
			return zero, r
		case time.Duration: // hold the call
			select {
			case <-time.After(r):
			case <-ctx.Done():
			}
		}
		return zero.ProtoReflect().Type().New().Interface().(Resp), nil
	})
}

// response is an HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (b *bridge) do(t *testing.T, method, path, body string, header map[string]string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, b.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	r := response{resp.StatusCode, resp.Header, out}
	if b.check != nil {
		b.check.request(t, req, body, r)
	}
	return r
}

// jsonValue parses JSON for a comparison that ignores spacing and key
// order (protojson varies its spacing on purpose).
func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, b)
	}
	return v
}
