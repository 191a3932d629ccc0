package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/calls"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/prom"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

// The cluster tests run `figway serve` as a child process, configured as
// docs/operations.md ("Running against a cluster") says: broker.urls with
// every node, quorum request queues declared by figway's topology, and an
// SDK worker with every node's URL.

// Routes of the cluster tests. GetOrder and ListOrders are rpc routes (the
// second retry: idempotent), PlaceOrder is an event route; all go to one
// quorum queue, served by one pool of SDK workers.
const (
	getOrder   = "orders.v1.OrderService/GetOrder"
	listOrders = "orders.v1.OrderService/ListOrders"
	placeOrder = "orders.v1.OrderService/PlaceOrder"
)

// The tests that share the cluster keep apart by names: each has an
// exchange and a request queue of its own, in the default virtual host.
// (A virtual host per test costs two rabbitmqctl runs, each of which
// starts an Erlang VM: seconds, and a minute on a loaded machine.)

// exchangeOf returns the test's exchange.
func exchangeOf(t *testing.T) string { return "x." + t.Name() }

// queueOf returns the test's request queue.
func queueOf(t *testing.T) string { return t.Name() + ".requests" }

// clusterRoutes is the routes file of figway on a cluster: gRPC, REST and
// admin listeners, the descriptor set, the broker URLs, the exchange and
// the queue.
const clusterRoutes = `
server: {grpc: %[1]q, http: %[2]q, admin: %[3]q, shutdown_grace: 10s}
descriptors: [%[4]s]
broker: {urls: [%[5]s]}
routes:
  - {method: orders.v1.OrderService/GetOrder, exchange: %[6]q, routing_key: orders.get, timeout: 60s}
  - {method: orders.v1.OrderService/ListOrders, exchange: %[6]q, routing_key: orders.list, timeout: 60s, retry: idempotent}
  - {method: orders.v1.OrderService/PlaceOrder, exchange: %[6]q, routing_key: orders.placed, pattern: event}
topology:
  exchanges: [{name: %[6]q, type: topic}]
  queues: [{name: %[7]q, type: quorum, bind: {exchange: %[6]q, key: "orders.#"}}]
`

// figwayProc is `figway serve` running as a child process.
type figwayProc struct {
	*figway.Proc
	name        string
	grpc, admin string
	conn        *grpc.ClientConn
}

// startFigway runs bin as `figway serve` with clusterRoutes over urls and
// waits until it is ready. It is killed when the test ends if still running.
func startFigway(t *testing.T, bin, name string, urls []string) *figwayProc {
	t.Helper()
	a := figway.NewAddrs(t)
	desc, err := filepath.Abs("../../examples/orders/orders.binpb")
	if err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(urls))
	for i, u := range urls {
		quoted[i] = strconv.Quote(u)
	}
	path := filepath.Join(t.TempDir(), name+".yaml")
	routes := fmt.Sprintf(clusterRoutes, a.GRPC, a.HTTP, a.Admin, desc, strings.Join(quoted, ", "), exchangeOf(t), queueOf(t))
	if err := os.WriteFile(path, []byte(routes), 0o600); err != nil {
		t.Fatal(err)
	}
	return &figwayProc{Proc: figway.RunAs(t, name, bin, path, a), name: name, grpc: a.GRPC, admin: a.Admin,
		conn: figway.Dial(t, a.GRPC)}
}

// orders returns a client of the process's OrderService.
func (p *figwayProc) orders() ordersv1.OrderServiceClient {
	return ordersv1.NewOrderServiceClient(p.conn)
}

// node returns the node figway last said it connected to ("connected to
// RabbitMQ" in its log, whose broker attribute names host and port), or
// nil.
func (p *figwayProc) node(c *rabbitmq.Cluster) *rabbitmq.Node {
	var broker string
	for _, line := range strings.Split(p.Log.String(), "\n") {
		var m struct{ Msg, Broker string }
		if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "connected to RabbitMQ" {
			broker = m.Broker
		}
	}
	u, err := url.Parse(broker)
	if err != nil {
		return nil
	}
	return c.Node(u.Port())
}

// timeline returns the messages of figway's log from since on, each with
// how long after since it was logged, but for the calls that failed: what
// figway did after a fault.
func (p *figwayProc) timeline(since time.Time) string {
	var b strings.Builder
	for _, line := range strings.Split(p.Log.String(), "\n") {
		var m struct {
			Time time.Time
			Msg  string
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Time.After(since) && m.Msg != "call failed" {
			fmt.Fprintf(&b, "\n  +%v %s", m.Time.Sub(since).Round(time.Millisecond), m.Msg)
		}
	}
	return b.String()
}

// metric returns the value of an unlabelled metric on the admin listener.
func (p *figwayProc) metric(t *testing.T, name string) float64 {
	t.Helper()
	v := prom.Get(t, "http://"+p.admin+"/metrics").Value(name)
	if v < 0 {
		t.Fatalf("no metric %s", name)
	}
	return v
}

// terminate sends SIGTERM.
func (p *figwayProc) terminate(t *testing.T) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// sdkWorker is a pool member serving the orders queue with the Go SDK: each
// rpc answers with its request's id (so a caller can tell its own reply),
// after delay; each event is counted by its id.
type sdkWorker struct {
	mu     sync.Mutex
	runs   map[string]int // request id → times a handler ran it
	events map[string]int // event id → times consumed
	w      *worker.Worker
	// running counts the handlers running now.
	running atomic.Int64
	// stop stops the worker and waits for its Run to return; it runs once,
	// also when the test ends.
	stop func()
}

// startSDKWorker runs a worker with urls until the test ends.
func startSDKWorker(t *testing.T, urls []string, delay time.Duration, concurrency int) *sdkWorker {
	t.Helper()
	s := &sdkWorker{runs: map[string]int{}, events: map[string]int{}}
	// The worker's log is shown when the test fails: what the broker did
	// to its connection is told there.
	var log proc.SyncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the SDK worker's log:\n%s", log.String())
		}
	})
	s.w = worker.New(worker.Config{URLs: urls, Queue: queueOf(t), Concurrency: concurrency,
		ShutdownGrace: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	ran := func(ctx context.Context, id string) error {
		s.mu.Lock()
		s.runs[id]++
		s.mu.Unlock()
		s.running.Add(1)
		defer s.running.Add(-1)
		select {
		case <-time.After(delay):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	worker.Handle(s.w, getOrder, func(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
		return &ordersv1.Order{OrderId: req.OrderId}, ran(ctx, req.OrderId)
	})
	worker.Handle(s.w, listOrders, func(ctx context.Context, req *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
		return &ordersv1.ListOrdersResponse{Orders: []*ordersv1.Order{{OrderId: req.CustomerId}}}, ran(ctx, req.CustomerId)
	})
	worker.Handle(s.w, placeOrder, func(ctx context.Context, req *ordersv1.PlaceOrderRequest) (*ordersv1.Order, error) {
		s.mu.Lock()
		s.events[worker.EventID(ctx)]++
		s.mu.Unlock()
		return &ordersv1.Order{}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.w.Run(ctx) }()
	s.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	t.Cleanup(s.stop)
	poll.Until(t, time.Minute, "worker consuming", func() bool { return s.w.Stats().Connects > 0 })
	return s
}

// redelivered returns how many request ids a handler ran more than once.
func (s *sdkWorker) redelivered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, runs := range s.runs {
		if runs > 1 {
			n++
		}
	}
	return n
}

// mixedLoad is the load of the tests that fault the cluster under calls:
// 64 callers of the plain route, 64 of the retry: idempotent route and 16
// sending events, until stop.
type mixedLoad struct {
	plain, retried, sent *calls.Load
	ev                   *events
	stop                 context.CancelFunc
}

// startMixedLoad starts a mixedLoad on orders and lets it run 2 s.
func startMixedLoad(orders ordersv1.OrderServiceClient) *mixedLoad {
	ctx, stop := context.WithCancel(context.Background())
	m := &mixedLoad{ev: newEvents(), stop: stop}
	m.plain = calls.Start(ctx, callers, 1000000, getOrderCall(orders, "get"))
	m.retried = calls.Start(ctx, callers, 1000000, listOrdersCall(orders, "list"))
	m.sent = calls.Start(ctx, 16, 1000000, m.ev.call(orders))
	time.Sleep(2 * time.Second)
	return m
}

// ran returns how many rpc request ids a handler ran.
func (s *sdkWorker) ran() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.runs)
}

// summary is what a fault did to a load.
type summary struct {
	calls, failed int
	codes         map[codes.Code]int
	firstErr      error
	// inFlightEnded is how long after the fault the last call in flight
	// at the fault ended; inFlightFailed, the last of those that failed
	// (one that had not been published yet may wait for the reconnect,
	// and succeed).
	inFlightEnded, inFlightFailed time.Duration
	// servedAgain is how long after the fault the first call that started
	// after it succeeded; -1 if none did.
	servedAgain time.Duration
	// longestGap is the longest time without a successful call's end,
	// from the fault on.
	longestGap time.Duration
	slowest    time.Duration
	// lastFailed is how long after the fault the last failed call ended.
	lastFailed time.Duration
	// messages counts the failed calls by their status message.
	messages map[string]int
}

func summarize(outs []calls.Outcome, fault time.Time) summary {
	s := summary{codes: map[codes.Code]int{}, servedAgain: -1, messages: map[string]int{}}
	last := fault
	for _, o := range outs {
		s.calls++
		s.slowest = max(s.slowest, o.End.Sub(o.Start))
		if o.Err != nil {
			s.failed++
			s.codes[status.Code(o.Err)]++
			s.messages[status.Convert(o.Err).Message()]++
			s.lastFailed = max(s.lastFailed, o.End.Sub(fault))
			if s.firstErr == nil {
				s.firstErr = o.Err
			}
		}
		if o.Start.Before(fault) && o.End.After(fault) {
			s.inFlightEnded = max(s.inFlightEnded, o.End.Sub(fault))
			if o.Err != nil {
				s.inFlightFailed = max(s.inFlightFailed, o.End.Sub(fault))
			}
		}
		if o.Err == nil && o.End.After(fault) {
			s.longestGap = max(s.longestGap, o.End.Sub(last))
			last = o.End
			if s.servedAgain < 0 && o.Start.After(fault) {
				s.servedAgain = o.End.Sub(fault)
			}
		}
	}
	return s
}

func (s summary) String() string {
	again := "never"
	if s.servedAgain >= 0 {
		again = s.servedAgain.Round(time.Millisecond).String() + " after it"
	}
	failed := ""
	if s.failed > 0 {
		failed = fmt.Sprintf("; the last failed call ended %v after the fault; failures by message: %v", s.lastFailed.Round(time.Millisecond), s.messages)
	}
	return fmt.Sprintf("%d calls, %d failed %v; calls in flight at the fault ended within %v; first call started after it succeeded %s; longest gap between successes %v; slowest call %v%s",
		s.calls, s.failed, s.codes, s.inFlightEnded.Round(time.Millisecond), again,
		s.longestGap.Round(time.Millisecond), s.slowest.Round(time.Millisecond), failed)
}

// getOrderCall calls GetOrder with an id unique to caller and seq and
// checks that the reply carries it back.
func getOrderCall(orders ordersv1.OrderServiceClient, prefix string) func(ctx context.Context, caller, seq int) error {
	return func(ctx context.Context, caller, seq int) error {
		id := fmt.Sprintf("%s-%d-%d", prefix, caller, seq)
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		o, err := orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: id})
		if err == nil && o.OrderId != id {
			return fmt.Errorf("GetOrder(%q) answered with %q: another caller's reply", id, o.OrderId)
		}
		return err
	}
}

// listOrdersCall is getOrderCall for ListOrders, the retry: idempotent route.
func listOrdersCall(orders ordersv1.OrderServiceClient, prefix string) func(ctx context.Context, caller, seq int) error {
	return func(ctx context.Context, caller, seq int) error {
		id := fmt.Sprintf("%s-%d-%d", prefix, caller, seq)
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		r, err := orders.ListOrders(ctx, &ordersv1.ListOrdersRequest{CustomerId: id})
		if err == nil && (len(r.Orders) != 1 || r.Orders[0].OrderId != id) {
			return fmt.Errorf("ListOrders(%q) answered with %v: another caller's reply", id, r.Orders)
		}
		return err
	}
}

// restartAfter restarts the cluster's dead nodes when the test ends, so
// that the next test has the whole cluster.
func restartAfter(t *testing.T, c *rabbitmq.Cluster) {
	t.Cleanup(func() {
		begin := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := c.RestartDead(ctx); err != nil {
			t.Errorf("restart killed nodes: %v", err)
		}
		t.Logf("killed nodes restarted in %v", time.Since(begin).Round(time.Millisecond))
	})
}

// order returns urls rotated to start at i: figway and workers start with
// different nodes.
func order(urls []string, i int) []string {
	return append(slices.Clone(urls[i:]), urls[:i]...)
}

// breakerWatch samples a figway's figway_breaker_state every 100 ms and
// remembers each route whose breaker it saw anything but closed.
type breakerWatch struct {
	stop    context.CancelFunc
	done    chan struct{}
	samples int
	seen    map[string]string // route → its first state other than closed, and when
	errs    int               // scrapes that failed
}

// watchBreakers starts watching p's breakers; end stops it.
func (p *figwayProc) watchBreakers() *breakerWatch {
	ctx, stop := context.WithCancel(context.Background())
	w := &breakerWatch{stop: stop, done: make(chan struct{}), seen: map[string]string{}}
	begin := time.Now()
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			s, err := prom.Fetch("http://" + p.admin + "/metrics")
			if err != nil {
				w.errs++
			} else {
				w.samples++
				for _, m := range s["figway_breaker_state"].GetMetric() {
					route, state := labelOf(m, "route"), labelOf(m, "state")
					if state != "closed" && m.GetGauge().GetValue() == 1 && w.seen[route] == "" {
						w.seen[route] = fmt.Sprintf("%s %v after the watch began", state, time.Since(begin).Round(time.Millisecond))
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// end stops the watch and fails t if a breaker was seen other than closed,
// or if too few samples were taken to tell.
func (w *breakerWatch) end(t *testing.T) {
	t.Helper()
	w.stop()
	<-w.done
	t.Logf("breakers: %d samples of figway_breaker_state (%d scrapes failed); not closed: %v", w.samples, w.errs, w.seen)
	for route, what := range w.seen {
		t.Errorf("breaker of %s seen %s; want closed throughout", route, what)
	}
	if w.samples < 10 {
		t.Errorf("only %d samples of the breakers' state: the watch proves nothing", w.samples)
	}
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// noConsumerRefusals returns the calls p did not publish for want of a
// consumer (figway_no_consumer_total, all routes).
func (p *figwayProc) noConsumerRefusals(t *testing.T) float64 {
	t.Helper()
	return prom.Get(t, "http://"+p.admin+"/metrics").Sum("figway_no_consumer_total")
}

// expectNoConsumerRefusals fails t if p refused a call for want of a
// consumer: every test's workers run throughout, on another node than
// the one it kills, so a refusal is a false "no consumer".
func (p *figwayProc) expectNoConsumerRefusals(t *testing.T) {
	t.Helper()
	if n := p.noConsumerRefusals(t); n != 0 {
		t.Errorf("%s refused %v calls for want of a consumer while its workers ran; want 0", p.name, n)
	}
}
