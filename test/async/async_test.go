package async

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/prom"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// asyncRoutes is the routes file of the async tests: GetOrder is async
// (after 1s, kept 10s once done, a 6s deadline for the worker, owned by
// x-tenant-id); the worker of figway.Routes answers "slow-<duration>" after
// that long and "missing" with NOT_FOUND. Placeholders: GRPC, HTTP, ADMIN,
// DESC, BROKER, KEYFILE and ASYNC (the route's async settings).
const asyncRoutes = `
server: {grpc: "GRPC", http: "HTTP", admin: "ADMIN", shutdown_grace: 3s, operations_key_file: "KEYFILE"}
descriptors: ["DESC"]
broker: {url: "BROKER"}
routes:
  - {method: orders.v1.OrderService/GetOrder, exchange: orders, routing_key: orders.get ASYNC}
  - {method: orders.v1.OrderService/ListOrders, exchange: orders, routing_key: orders.list, async: {after: 1s}}
topology:
  exchanges: [{name: orders, type: topic}]
  queues: [{name: orders.requests, bind: {exchange: orders, key: "orders.#"}}]
`

const asyncGetOrder = `, async: {after: 1s, keep: 10s, timeout: 6s, owner_by: x-tenant-id}`

// writeAsyncRoutes writes asyncRoutes for a into path (a new file if "");
// async replaces ASYNC.
func writeAsyncRoutes(t *testing.T, path string, a figway.Addrs, broker, keyFile, async string) string {
	t.Helper()
	desc, _ := filepath.Abs("../../examples/orders/orders.binpb")
	r := strings.NewReplacer("GRPC", a.GRPC, "HTTP", a.HTTP, "ADMIN", a.Admin, "DESC", desc,
		"BROKER", broker, "KEYFILE", keyFile, " ASYNC", async)
	if path == "" {
		path = filepath.Join(t.TempDir(), "figway.yaml")
	}
	if err := os.WriteFile(path, []byte(r.Replace(asyncRoutes)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("not JSON: %v: %s", err, s)
	}
	return b.String()
}

func writeKey(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "operations.key")
	if err := os.WriteFile(path, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// opJSON is an operation as REST renders it.
type opJSON struct {
	Name     string `json:"name"`
	Done     bool   `json:"done"`
	Metadata struct {
		Method     string `json:"method"`
		StartTime  string `json:"startTime"`
		HTTPStatus int    `json:"httpStatus"`
	} `json:"metadata"`
	Response json.RawMessage `json:"response"`
	Error    *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// restCall is one REST request and its answer.
type restCall struct {
	code            int
	header, trailer http.Header
	body            string
	took            time.Duration
}

func do(t *testing.T, method, url string, header ...string) restCall {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return restCall{code: resp.StatusCode, header: resp.Header, trailer: resp.Trailer, body: string(b), took: time.Since(start)}
}

func (c restCall) op(t *testing.T) opJSON {
	t.Helper()
	var op opJSON
	if err := json.Unmarshal([]byte(c.body), &op); err != nil {
		t.Fatalf("not an operation: %v: %s", err, c.body)
	}
	return op
}

// TestAsyncOperations runs two figway processes, A and B, on one broker
// and one stream: calls taken by A are polled, waited for, deleted and
// read by their owner only on B; B restarted answers them again; A killed
// with -9 leaves its pending operation UNAVAILABLE at its deadline, as B
// sees it.
func TestAsyncOperations(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	figway.StartWorker(t, url, nil)
	key := writeKey(t)
	aAddr, bAddr := figway.NewAddrs(t), figway.NewAddrs(t)
	aPath := writeAsyncRoutes(t, "", aAddr, url, key, asyncGetOrder)
	bPath := writeAsyncRoutes(t, "", bAddr, url, key, asyncGetOrder)
	bin := proc.BuildFigway(t)
	a := figway.Run(t, bin, aPath, aAddr)
	b := figway.Run(t, bin, bPath, bAddr)
	A, B := "http://"+aAddr.HTTP, "http://"+bAddr.HTTP
	tenant := []string{"X-Tenant-Id", "t-1"}

	// What a synchronous caller gets, for the same worker and route, once
	// the worker consumes (the queue is figway's topology).
	var sync restCall
	poll.Until(t, 20*time.Second, "a fast call answered 200", func() bool {
		sync = do(t, "GET", A+"/v1/orders/slow-10ms", tenant...)
		return sync.code == 200
	})
	// protojson varies its spacing; operations render the same JSON
	// compacted.
	wantBody := func(id string) string { return compact(t, strings.ReplaceAll(sync.body, "slow-10ms", id)) }

	// A slow call: 202 after about async.after, with a Location.
	slow := do(t, "GET", A+"/v1/orders/slow-4s", tenant...)
	if slow.code != http.StatusAccepted {
		t.Fatalf("slow call = %d %s; want 202", slow.code, slow.body)
	}
	if slow.took < 900*time.Millisecond || slow.took > 10*time.Second {
		t.Errorf("202 came after %v; want about 1s (after: 1s)", slow.took)
	}
	loc := slow.header.Get("Location")
	op := slow.op(t)
	if !strings.HasPrefix(loc, "/v1/operations/") || op.Name != "operations/"+strings.TrimPrefix(loc, "/v1/operations/") ||
		op.Done || op.Metadata.Method != "orders.v1.OrderService/GetOrder" || op.Metadata.StartTime == "" {
		t.Fatalf("202: Location %q, body %s", loc, slow.body)
	}
	if slow.header.Get("Retry-After") == "" {
		t.Error("202 without Retry-After")
	}
	t.Logf("202 after %v, Location %s", slow.took.Round(time.Millisecond), loc)
	acceptedAt := time.Now()

	// B, which did not take the call, knows it: pending.
	if got := do(t, "GET", B+loc, tenant...); got.code != 200 || got.op(t).Done {
		t.Fatalf("GET on B while pending = %d %s; want 200, done false", got.code, got.body)
	}
	// Not the owner, no owner, an unknown id: 404, all alike.
	for _, h := range [][]string{{"X-Tenant-Id", "t-2"}, nil} {
		if got := do(t, "GET", B+loc, h...); got.code != 404 {
			t.Errorf("GET with %v = %d %s; want 404", h, got.code, got.body)
		}
	}
	if got := do(t, "GET", B+"/v1/operations/0123456789abcdef0123456789abcdef", tenant...); got.code != 404 {
		t.Errorf("GET unknown id = %d %s; want 404", got.code, got.body)
	}

	// ?wait returns as soon as the reply is in, with the body a
	// synchronous call gets.
	waited := do(t, "GET", B+loc+"?wait=20s", tenant...)
	done := waited.op(t)
	if waited.code != 200 || !done.Done {
		t.Fatalf("GET ?wait=20s on B = %d %s; want done", waited.code, waited.body)
	}
	if since := time.Since(acceptedAt); since > 8*time.Second {
		t.Errorf("?wait returned %v after the 202; the worker answers 3s after it", since)
	}
	if string(done.Response) != wantBody("slow-4s") {
		t.Errorf("response = %s; want the synchronous body %s", done.Response, wantBody("slow-4s"))
	}

	// A service error: Prefer: respond-async answers 202 at once; the
	// operation ends with the status a synchronous caller gets.
	syncErr := do(t, "GET", A+"/v1/orders/missing", tenant...)
	failing := do(t, "GET", A+"/v1/orders/missing", "Prefer", "respond-async", tenant[0], tenant[1])
	if failing.code != http.StatusAccepted || failing.header.Get("Preference-Applied") != "respond-async" {
		t.Fatalf("Prefer: respond-async = %d after %v, Preference-Applied %q; want 202 at once", failing.code, failing.took, failing.header.Get("Preference-Applied"))
	}
	failed := do(t, "GET", B+failing.header.Get("Location")+"?wait=10s", tenant...).op(t)
	var syncSt struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	json.Unmarshal([]byte(syncErr.body), &syncSt)
	if !failed.Done || failed.Error == nil || failed.Error.Code != int(codes.NotFound) || failed.Error.Message != syncSt.Message {
		t.Errorf("failed operation = %+v; want the synchronous error %s", failed, syncErr.body)
	}

	// gRPC: google.longrunning.Operations on B, for the same operation.
	bConn := figway.Dial(t, bAddr.GRPC)
	if names := figway.ListServices(t, bConn); !slices.Contains(names, "google.longrunning.Operations") {
		t.Errorf("reflection lists %v; want google.longrunning.Operations among them", names)
	}
	lro := longrunningpb.NewOperationsClient(bConn)
	ctx, cancel := context.WithTimeout(figway.WithMetadata(context.Background(), "x-tenant-id", "t-1"), 10*time.Second)
	defer cancel()
	gop, err := lro.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: done.Name})
	if err != nil {
		t.Fatalf("GetOperation: %v", err)
	}
	var order ordersv1.Order
	if !gop.GetDone() || gop.GetResponse().UnmarshalTo(&order) != nil || order.GetOrderId() != "slow-4s" {
		t.Errorf("GetOperation = %v; want done with the order", gop)
	}
	list, err := lro.ListOperations(ctx, &longrunningpb.ListOperationsRequest{Filter: `method = "orders.v1.OrderService/GetOrder"`})
	if err != nil || len(list.GetOperations()) < 2 {
		t.Errorf("ListOperations = %v, %v; want the two operations", list, err)
	}
	other, cancel2 := context.WithTimeout(figway.WithMetadata(context.Background(), "x-tenant-id", "t-2"), 10*time.Second)
	defer cancel2()
	if _, err := lro.GetOperation(other, &longrunningpb.GetOperationRequest{Name: done.Name}); status.Code(err) != codes.NotFound {
		t.Errorf("GetOperation by another owner = %v; want NOT_FOUND", err)
	}

	// DELETE on B: A forgets it too, and drops its reply.
	del := do(t, "GET", A+"/v1/orders/slow-2s", tenant...)
	if del.code != http.StatusAccepted {
		t.Fatalf("slow call = %d; want 202", del.code)
	}
	if got := do(t, "DELETE", B+del.header.Get("Location"), tenant...); got.code != 200 {
		t.Fatalf("DELETE = %d %s", got.code, got.body)
	}
	poll.Until(t, 5*time.Second, "deleted operation gone on A", func() bool {
		return do(t, "GET", A+del.header.Get("Location"), tenant...).code == 404
	})

	// B restarted while one operation is pending and two are done: it
	// answers them all again once ready.
	pending := do(t, "GET", A+"/v1/orders/slow-3s", tenant...)
	if pending.code != http.StatusAccepted {
		t.Fatalf("slow call = %d; want 202", pending.code)
	}
	b.Cmd.Process.Signal(syscall.SIGTERM)
	<-b.Exited
	b = figway.Run(t, bin, bPath, bAddr)
	for _, l := range []string{loc, failing.header.Get("Location"), pending.header.Get("Location")} {
		if got := do(t, "GET", B+l, tenant...); got.code != 200 {
			t.Errorf("GET %s on restarted B = %d %s; want 200", l, got.code, got.body)
		}
	}
	if got := do(t, "GET", B+loc, tenant...).op(t); string(got.Response) != wantBody("slow-4s") {
		t.Errorf("restarted B: response = %s; want %s", got.Response, wantBody("slow-4s"))
	}
	if got := do(t, "GET", B+pending.header.Get("Location")+"?wait=10s", tenant...).op(t); string(got.Response) != wantBody("slow-3s") {
		t.Errorf("restarted B, pending one: response = %s; want %s", got.Response, wantBody("slow-3s"))
	}
	if got := do(t, "GET", B+del.header.Get("Location"), tenant...); got.code != 404 {
		t.Errorf("restarted B knows the deleted operation: %d %s", got.code, got.body)
	}

	// A killed with -9 before the reply: B ends the operation UNAVAILABLE
	// at its deadline (6s after it started).
	orphan := do(t, "GET", A+"/v1/orders/slow-30s", tenant...)
	if orphan.code != http.StatusAccepted {
		t.Fatalf("slow call = %d; want 202", orphan.code)
	}
	a.Cmd.Process.Signal(syscall.SIGKILL)
	<-a.Exited
	start := time.Now()
	ended := do(t, "GET", B+orphan.header.Get("Location")+"?wait=30s", tenant...).op(t)
	if !ended.Done || ended.Error == nil || ended.Error.Code != int(codes.Unavailable) {
		t.Errorf("orphaned operation = %+v; want done with UNAVAILABLE", ended)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("orphaned operation ended %v after the kill; its deadline was 5s away", took)
	}
	t.Logf("orphaned operation ended UNAVAILABLE %v after A was killed", time.Since(start).Round(time.Millisecond))

	// Expired after keep (10s): 404.
	poll.Until(t, 20*time.Second, "done operation expired on B", func() bool {
		return do(t, "GET", B+loc, tenant...).code == 404
	})
	s := prom.Get(t, "http://"+bAddr.Admin+"/metrics")
	if s.Value("figway_operations_expired_total") < 1 || s.Value("figway_operations_concluded_total") != 1 {
		t.Errorf("metrics: expired %v, concluded %v; want ≥1 and 1",
			s.Value("figway_operations_expired_total"), s.Value("figway_operations_concluded_total"))
	}
}
