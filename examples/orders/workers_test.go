package orders_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/figway/figway/examples/orders/store"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	figwaytest "github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
)

func TestMain(m *testing.M) { rabbitmq.Main(m) }

// The workers in other languages, written from docs/wire-protocol.md alone.
// Each is run as its own process against figway serve on a private broker,
// with the demo's calls over gRPC and REST; so the protocol document cannot
// drift from what figway sends and accepts.
var polyglot = []struct {
	name     string
	encoding string // of the routes: the worker's body format
	cmd      func(t *testing.T, url string) *exec.Cmd
}{
	{"python", "protobuf", func(t *testing.T, url string) *exec.Cmd {
		py := python(t)
		return exec.Command(py, "python/worker.py", "--amqp", url, "--descriptors", "orders.binpb", "--watch-every", "0.05")
	}},
	{"node", "json", func(t *testing.T, url string) *exec.Cmd {
		node := nodeWorker(t)
		return exec.Command(node, "node/worker.js", "--amqp", url, "--watch-every-ms", "50")
	}},
}

func TestPolyglotWorkers(t *testing.T) {
	figway := proc.BuildFigway(t)
	for _, w := range polyglot {
		t.Run(w.name, func(t *testing.T) {
			url := rabbitmq.ForTest(t).NewVHost(t)
			log := start(t, w.cmd(t, url), "ready", 30*time.Second)
			a := serveFigway(t, figway, url, w.encoding)
			t.Run("grpc", func(t *testing.T) { demoGRPC(t, a.grpc) })
			t.Run("rest", func(t *testing.T) { demoREST(t, a.http) })
			t.Run("stream", func(t *testing.T) { demoStream(t, a.grpc, a.http) })
			t.Run("expired requests are dropped", func(t *testing.T) { expiredDropped(t, url, w.encoding) })
			t.Run("replies to a gone reply-to are dropped", func(t *testing.T) { replyToGoneDropped(t, url, w.encoding, a.grpc, log) })
			t.Run("poison requests are refused", func(t *testing.T) { poisonRefused(t, url, w.encoding, w.cmd) })
		})
	}
}

// seed is order o-1 as every side of the demo serves it.
func seed(t *testing.T) *ordersv1.Order {
	o, err := store.New(slog.New(slog.DiscardHandler), nil).GetOrder(context.Background(), &ordersv1.GetOrderRequest{OrderId: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func demoGRPC(t *testing.T, addr string) {
	c := ordersv1.NewOrderServiceClient(figwaytest.Dial(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	got, err := c.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
	if err != nil {
		t.Fatalf("GetOrder(o-1): %v", err)
	}
	if d := cmp.Diff(seed(t), got, protocmp.Transform()); d != "" {
		t.Errorf("GetOrder(o-1) (-want +got):\n%s", d)
	}

	for _, tc := range []struct {
		req  *ordersv1.GetOrderRequest
		code codes.Code
		msg  string
	}{
		{&ordersv1.GetOrderRequest{OrderId: "missing"}, codes.NotFound, `order "missing" not found`},
		{&ordersv1.GetOrderRequest{}, codes.InvalidArgument, "order_id is required"},
	} {
		_, err := c.GetOrder(ctx, tc.req)
		if s := status.Convert(err); s.Code() != tc.code || s.Message() != tc.msg {
			t.Errorf("GetOrder(%q) = %v %q; want %v %q", tc.req.GetOrderId(), s.Code(), s.Message(), tc.code, tc.msg)
		}
	}

	// PlaceOrder is an event: the answer is the empty output message, with
	// the event id as figway-event-id; the worker names the order by it.
	var header metadata.MD
	placed, err := c.PlaceOrder(ctx, &ordersv1.PlaceOrderRequest{CustomerId: "c-grpc", Note: "by grpc",
		Items: []*ordersv1.LineItem{{Sku: "sku-a", Quantity: 3, UnitPriceCents: 250}, {Sku: "sku-b", Quantity: 1, UnitPriceCents: 1000}}},
		grpc.Header(&header))
	if err != nil {
		t.Fatalf("PlaceOrder: %v", err)
	}
	if !proto.Equal(placed, &ordersv1.Order{}) {
		t.Errorf("PlaceOrder answered %v; want the empty Order of an event route", placed)
	}
	ids := header.Get("figway-event-id")
	if len(ids) != 1 {
		t.Fatalf("PlaceOrder: header figway-event-id = %q; want one id", ids)
	}
	var o *ordersv1.Order
	poll.Until(t, 10*time.Second, "the placed order", func() bool {
		o, err = c.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: ids[0]})
		return err == nil
	})
	if o.GetCustomerId() != "c-grpc" || o.GetTotalCents() != 3*250+1000 || len(o.GetItems()) != 2 ||
		o.GetStatus() != ordersv1.OrderStatus_ORDER_STATUS_PLACED || o.GetNote() != "by grpc" || o.GetCreatedAt() == nil {
		t.Errorf("GetOrder(placed) = %v", o)
	}

	list, err := c.ListOrders(ctx, &ordersv1.ListOrdersRequest{CustomerId: "c-grpc"})
	if err != nil || len(list.GetOrders()) != 1 || list.GetOrders()[0].GetOrderId() != ids[0] {
		t.Errorf("ListOrders(c-grpc) = %v, %v; want the one placed order", list, err)
	}
	page, err := c.ListOrders(ctx, &ordersv1.ListOrdersRequest{PageSize: 1})
	if err != nil || len(page.GetOrders()) != 1 || page.GetNextPageToken() == "" {
		t.Fatalf("ListOrders(page_size 1) = %v, %v; want one order and a next page", page, err)
	}
	next, err := c.ListOrders(ctx, &ordersv1.ListOrdersRequest{PageSize: 500, PageToken: page.GetNextPageToken()})
	if err != nil || len(next.GetOrders()) == 0 || next.GetOrders()[len(next.GetOrders())-1].GetOrderId() != "o-1" {
		t.Errorf("ListOrders(next page) = %v, %v; want the rest, ending with the oldest, o-1", next, err)
	}
	if _, err := c.ListOrders(ctx, &ordersv1.ListOrdersRequest{PageToken: "nope"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ListOrders(bad token) = %v; want InvalidArgument", err)
	}

	for range 2 { // cancelling a cancelled order is a no-op
		o, err := c.CancelOrder(ctx, &ordersv1.CancelOrderRequest{OrderId: ids[0], Reason: "test"})
		if err != nil || o.GetStatus() != ordersv1.OrderStatus_ORDER_STATUS_CANCELLED {
			t.Errorf("CancelOrder = %v, %v; want the order, cancelled", o, err)
		}
	}
}

// demoStream calls WatchOrder, which the workers answer with a stream of
// ten events (50ms apart in these tests), over gRPC and REST.
func demoStream(t *testing.T, grpcAddr, httpAddr string) {
	c := ordersv1.NewOrderServiceClient(figwaytest.Dial(t, grpcAddr))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		id     string
		events int
		code   codes.Code
	}{{"o-1", 10, codes.OK}, {"missing", 0, codes.NotFound}} {
		s, err := c.WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: tc.id})
		if err != nil {
			t.Fatalf("WatchOrder(%s): %v", tc.id, err)
		}
		n := 0
		for {
			ev, err := s.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				if n != tc.events || status.Code(err) != tc.code {
					t.Errorf("WatchOrder(%s) = %d events, %v; want %d, %v", tc.id, n, err, tc.events, tc.code)
				}
				break
			}
			if ev.GetOrderId() != tc.id || ev.GetStatus() == ordersv1.OrderStatus_ORDER_STATUS_UNSPECIFIED || ev.GetAt() == nil {
				t.Errorf("WatchOrder(%s) event %d = %v; want the order's id, status and time", tc.id, n, ev)
			}
			n++
		}
	}

	code, body := rest(t, "GET", "http://"+httpAddr+"/v1/orders/o-1:watch", "")
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if code != http.StatusOK || len(lines) != 10 {
		t.Fatalf("GET /v1/orders/o-1:watch = %d, %d lines; want 200 and 10:\n%s", code, len(lines), body)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, `{"result":{"orderId":"o-1","status":"ORDER_STATUS_`) {
			t.Errorf("line %d = %s; want an event of o-1", i, l)
		}
	}
}

func demoREST(t *testing.T, addr string) {
	base := "http://" + addr
	code, body := rest(t, "GET", base+"/v1/orders/o-1", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/orders/o-1 = %d %s", code, body)
	}
	got := new(ordersv1.Order)
	if err := protojson.Unmarshal([]byte(body), got); err != nil {
		t.Fatalf("GET /v1/orders/o-1: %v in %s", err, body)
	}
	if d := cmp.Diff(seed(t), got, protocmp.Transform()); d != "" {
		t.Errorf("GET /v1/orders/o-1 (-want +got):\n%s", d)
	}

	code, body = rest(t, "GET", base+"/v1/orders/missing", "")
	var st struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusNotFound || err != nil || st.Code != int(codes.NotFound) || st.Message != `order "missing" not found` {
		t.Errorf("GET /v1/orders/missing = %d %s; want 404 with the worker's message", code, body)
	}

	req, _ := http.NewRequest("POST", base+"/v1/orders", strings.NewReader(`{"customerId":"c-rest","items":[{"sku":"sku-c","quantity":2,"unitPriceCents":"499"}]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("Figway-Event-Id")
	if resp.StatusCode != http.StatusAccepted || id == "" {
		t.Fatalf("POST /v1/orders = %d, Figway-Event-Id %q; want 202 and an id", resp.StatusCode, id)
	}
	poll.Until(t, 10*time.Second, "the order placed over REST", func() bool {
		code, body = rest(t, "GET", base+"/v1/orders/"+id, "")
		return code == http.StatusOK
	})
	o := new(ordersv1.Order)
	if err := protojson.Unmarshal([]byte(body), o); err != nil || o.GetTotalCents() != 998 || o.GetCustomerId() != "c-rest" {
		t.Errorf("GET /v1/orders/%s = %s, %v", id, body, err)
	}

	code, body = rest(t, "GET", base+"/v1/orders?customer_id=c-rest&status=ORDER_STATUS_PLACED", "")
	if code != http.StatusOK || !strings.Contains(body, id) {
		t.Errorf("GET /v1/orders?customer_id=c-rest = %d %s; want the placed order", code, body)
	}
	code, body = rest(t, "POST", base+"/v1/orders/"+id+":cancel", `{"reason":"test"}`)
	if code != http.StatusOK || !strings.Contains(body, "ORDER_STATUS_CANCELLED") {
		t.Errorf("POST :cancel = %d %s; want the order, cancelled", code, body)
	}
	code, body = rest(t, "GET", base+"/v1/orders?page_size=-1", "")
	if code != http.StatusBadRequest {
		t.Errorf("GET /v1/orders?page_size=-1 = %d %s; want 400", code, body)
	}
}

// expiredDropped publishes, straight to the worker's queue, a request whose
// figway-deadline has passed and then a live one: the worker answers the
// live one only (it serves one queue in order, so by then it has seen both).
func expiredDropped(t *testing.T, url, encoding string) {
	ch := rabbitmq.Channel(t, url)
	replies, err := ch.Consume(wire.DirectReplyTo, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	send := func(deadline time.Time) string {
		p := getOrder(encoding, wire.DirectReplyTo, deadline)
		p.Expiration = "" // let the worker, not the queue, see it expired
		if err := ch.PublishWithContext(context.Background(), "", "orders.requests", false, false, p); err != nil {
			t.Fatal(err)
		}
		return p.CorrelationId
	}
	send(time.Now().Add(-time.Second))
	live := send(time.Now().Add(10 * time.Second))
	select {
	case d := <-replies:
		if d.CorrelationId != live {
			t.Fatalf("reply to %s; want only the live request %s answered", d.CorrelationId, live)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reply to the live request")
	}
	select {
	case d := <-replies:
		t.Errorf("a second reply (%s): the expired request was answered", d.CorrelationId)
	case <-time.After(200 * time.Millisecond):
	}
}

// getOrder returns GetOrder(o-1) as figway publishes it on a route of the
// given encoding, with replyTo and deadline.
func getOrder(encoding, replyTo string, deadline time.Time) amqp.Publishing {
	ct, body := wire.ContentTypeProtobuf, []byte(nil)
	if encoding == "json" {
		ct, body = wire.ContentTypeJSON, []byte(`{"orderId":"o-1"}`)
	} else {
		body, _ = proto.Marshal(&ordersv1.GetOrderRequest{OrderId: "o-1"})
	}
	r := wire.Request{Method: "orders.v1.OrderService/GetOrder", Body: body, ContentType: ct, MessageID: wire.NewID(),
		CorrelationID: wire.NewID(), ReplyTo: replyTo, Deadline: deadline}
	return amqpwire.Publishing(&r, time.Now())
}

// python returns a Python 3 that has pika and protobuf: Debian's, where
// python3-pika and python3-protobuf install them.
func python(t *testing.T) string {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import pika, google.protobuf").Run() == nil {
			return py
		}
	}
	missing(t, "python3 with pika and protobuf (apt-get install python3-pika python3-protobuf; make test installs them)")
	return ""
}

// nodeWorker returns node, once examples/orders/node has its packages.
func nodeWorker(t *testing.T) string {
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node (Node.js 18 or later)")
	}
	if _, err := os.Stat("node/node_modules/amqplib"); err != nil {
		missing(t, "the Node worker's packages (npm ci in examples/orders/node; make test runs it)")
	}
	return node
}

// missing fails the test where CI promises everything is installed, and
// skips it elsewhere.
func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("missing: %s", what)
	}
	t.Skipf("missing: %s", what)
}

// start runs cmd until the test ends and waits for a line of its standard
// output to be ready. It returns what cmd writes to its standard error.
func start(t *testing.T, cmd *exec.Cmd, ready string, within time.Duration) *proc.SyncBuffer {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &proc.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	up := make(chan struct{})
	go func() {
		s := bufio.NewScanner(stdout)
		once := sync.Once{}
		for s.Scan() {
			if strings.TrimSpace(s.Text()) == ready {
				once.Do(func() { close(up) })
			}
		}
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), stderr.String())
		}
	})
	select {
	case <-up:
	case <-exited:
		t.Fatalf("%s exited before it was ready:\n%s", cmd, stderr.String())
	case <-time.After(within):
		t.Fatalf("%s not ready within %v:\n%s", cmd, within, stderr.String())
	}
	return stderr
}

type addrs struct{ grpc, http, admin string }

// serveFigway runs figway serve with every unary demo method migrated to
// the broker in the given encoding, and waits until it is ready.
func serveFigway(t *testing.T, bin, url, encoding string) addrs {
	t.Helper()
	a := addrs{proc.FreeAddr(t), proc.FreeAddr(t), proc.FreeAddr(t)}
	desc, _ := filepath.Abs("orders.binpb")
	routes := fmt.Sprintf(`
server: {grpc: "%[1]s", http: "%[2]s", admin: "%[3]s"}
descriptors: ["%[4]s"]
broker: {url: "%[6]s"}
defaults: {timeout: 10s}
routes:
  - {method: orders.v1.OrderService/GetOrder, exchange: orders, routing_key: orders.get, encoding: %[5]s}
  - {method: orders.v1.OrderService/ListOrders, exchange: orders, routing_key: orders.list, encoding: %[5]s}
  - {method: orders.v1.OrderService/PlaceOrder, exchange: orders, routing_key: orders.placed, pattern: event, encoding: %[5]s}
  - {method: orders.v1.OrderService/CancelOrder, exchange: orders, routing_key: orders.cancel, encoding: %[5]s}
  - {method: orders.v1.OrderService/WatchOrder, exchange: orders, routing_key: orders.watch, encoding: %[5]s, http: {get: "/v1/orders/{order_id}:watch"}}
topology:
  exchanges: [{name: orders, type: topic}]
  queues: [{name: orders.requests, bind: {exchange: orders, key: "orders.#"}}]
`, a.grpc, a.http, a.admin, desc, encoding, url)
	path := filepath.Join(t.TempDir(), "figway.yaml")
	if err := os.WriteFile(path, []byte(routes), 0o600); err != nil {
		t.Fatal(err)
	}
	runProcess(t, exec.Command(bin, "serve", "-config", path))
	figwaytest.WaitHTTP(t, "http://"+a.admin+"/readyz", http.StatusOK, 30*time.Second)
	return a
}

func rest(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
