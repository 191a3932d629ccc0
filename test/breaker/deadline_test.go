package breaker_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/adapters/grpcin"
	"github.com/figway/figway/adapters/httpin"
	"github.com/figway/figway/gateway"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/prom"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/metrics"
	"github.com/figway/figway/resilience"
)

// TestCallerDeadlineIsATimeout: a call whose caller's deadline (gRPC's
// grpc-timeout, REST's Grpc-Timeout) is shorter than its route's timeout
// and passes while a hung worker holds the request is a timeout — whoever
// set the deadline — on both ingresses: it counts for the breaker (five such
// calls on failures: 3 answer three timeouts, then the open breaker's
// UNAVAILABLE twice), and metrics and logs call it DeadlineExceeded, not a
// cancellation.
func TestCallerDeadlineIsATimeout(t *testing.T) {
	const callerTimeout = 2 * time.Second
	node := rabbitmq.ForTest(t)
	for _, tc := range []struct {
		ingress string
		// The codes a timeout and an open breaker answer: what the caller
		// gets, and the code label of figway_requests_total.
		timeout, open string
	}{
		{ingress: metrics.IngressGRPC, timeout: "DeadlineExceeded", open: "Unavailable"},
		{ingress: metrics.IngressHTTP, timeout: "504", open: "503"},
	} {
		t.Run(tc.ingress, func(t *testing.T) {
			url := node.NewVHost(t)
			hung := make(chan struct{})
			fault.StartWorker(t, url, "orders.get", func(d *amqp091.Delivery) amqp091.Publishing {
				<-hung // never replies while the test runs
				return amqp091.Publishing{}
			})
			t.Cleanup(func() { close(hung) }) // before the worker stops
			g, _ := figway(t, url, "  - {method: "+getOrder+", routing_key: orders.get, timeout: 30s, breaker: {failures: 3, open_for: 1m}}\n")
			in := startIngress(t, g)

			var got []string
			for i := 1; i <= 5; i++ {
				var code string
				if tc.ingress == metrics.IngressGRPC {
					code = in.grpcCall(callerTimeout)
				} else {
					code = in.restCall(t, callerTimeout)
				}
				got = append(got, code)
				// The caller may learn of its deadline before figway has
				// reported the call to the breaker: wait for figway's
				// answer before the next call.
				poll.Until(t, 5*time.Second, "figway's answer counted", func() bool { return in.answered(t, tc.ingress) == i })
			}
			want := []string{tc.timeout, tc.timeout, tc.timeout, tc.open, tc.open}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("5 calls with a %v caller deadline on failures: 3 answered %v; want %v", callerTimeout, got, want)
			}
			if st := g.Table().Lookup(getOrder).BreakerState(); st != resilience.BreakerOpen {
				t.Errorf("breaker %v; want open", st)
			}
			s := prom.Get(t, in.metrics+"/metrics")
			for label, n := range map[string]float64{tc.timeout: 3, tc.open: 2} {
				if v := s.Value("figway_requests_total", "route", getOrder, "ingress", tc.ingress, "code", label); v != n {
					t.Errorf("figway_requests_total{code=%q} = %v; want %v\n%s", label, v, n, s.Series("figway_requests_total"))
				}
			}
			logs := in.logs.String()
			if n := strings.Count(logs, "code=DeadlineExceeded"); n != 3 {
				t.Errorf("log has %d lines with code=DeadlineExceeded; want 3:\n%s", n, logs)
			}
			if strings.Contains(logs, "code=Canceled") {
				t.Errorf("log calls a timeout a cancellation:\n%s", logs)
			}
			t.Logf("%s: %v", tc.ingress, got)
		})
	}
}

// ingress is figway's gRPC and REST ingress in front of a gateway, with
// metrics and a log kept for the test.
type ingress struct {
	client  ordersv1.OrderServiceClient
	rest    string // base URL
	metrics string // base URL of the metrics handler
	m       *metrics.Metrics
	logs    *syncBuffer
}

func startIngress(t *testing.T, g *gateway.Gateway) *ingress {
	t.Helper()
	in := &ingress{logs: new(syncBuffer)}
	log := slog.New(slog.NewTextHandler(in.logs, nil))
	in.m = metrics.New("test", metrics.Sources{Table: g.Table})

	gs := grpcin.New(g, grpcin.Options{Logger: log, ServerOptions: []grpc.ServerOption{
		grpc.StreamInterceptor(in.m.StreamInterceptor(metrics.GRPCRoutes(g.Table))),
	}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); gs.Serve(ctx, lis, time.Second) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	in.client = ordersv1.NewOrderServiceClient(conn)

	hs, err := httpin.New(g, httpin.Options{Logger: log, OnRoute: metrics.SetRoute})
	if err != nil {
		t.Fatal(err)
	}
	rest := httptest.NewServer(in.m.HTTP(hs))
	in.rest = rest.URL
	mh := httptest.NewServer(in.m.Handler())
	in.metrics = mh.URL
	t.Cleanup(func() {
		mh.Close()
		rest.Close()
		conn.Close()
		cancel()
		<-done
	})
	return in
}

// grpcCall calls GetOrder with a deadline of timeout and returns the
// code the caller got.
func (in *ingress) grpcCall(timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := in.client.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
	return status.Code(err).String()
}

// restCall calls GET /v1/orders/o-1 with Grpc-Timeout set to timeout and
// returns the HTTP status the caller got.
func (in *ingress) restCall(t *testing.T, timeout time.Duration) string {
	req, _ := http.NewRequest(http.MethodGet, in.rest+"/v1/orders/o-1", nil)
	req.Header.Set("Grpc-Timeout", fmt.Sprintf("%dm", timeout.Milliseconds()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	resp.Body.Close()
	return fmt.Sprint(resp.StatusCode)
}

// answered returns the calls of the route figway has answered on ingress.
func (in *ingress) answered(t *testing.T, ingress string) int {
	s := prom.Get(t, in.metrics+"/metrics")
	n := 0
	for _, m := range s["figway_requests_total"].GetMetric() {
		match := true
		for _, l := range m.GetLabel() {
			if (l.GetName() == "route" && l.GetValue() != getOrder) || (l.GetName() == "ingress" && l.GetValue() != ingress) {
				match = false
			}
		}
		if match {
			n += int(m.GetCounter().GetValue())
		}
	}
	return n
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
