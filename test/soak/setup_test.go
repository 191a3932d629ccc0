package soak

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/prom"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

// soakRoutes is the routes file of each replica: GetOrder (gRPC and REST,
// retry: idempotent), PlaceOrder (an event), ExportOrders (async over
// REST), ListOrders (legacy's, shadowed to the broker) and CancelOrder (a
// canary: WEIGHT % of its calls to the broker, the others to legacy). All
// publish to one quorum queue. Placeholders: GRPC, HTTP, ADMIN, DESC,
// URLS, LEGACY, WEIGHT.
const soakRoutes = `
server: {grpc: "GRPC", http: "HTTP", admin: "ADMIN", shutdown_grace: 10s}
descriptors: ["DESC"]
broker: {urls: [URLS]}
legacy: {grpc: "LEGACY"}
routes:
  - {method: orders.v1.OrderService/GetOrder, exchange: soak, routing_key: orders.get, timeout: 30s, retry: idempotent}
  - {method: orders.v1.OrderService/PlaceOrder, exchange: soak, routing_key: orders.placed, pattern: event}
  - {method: orders.v1.OrderService/ExportOrders, exchange: soak, routing_key: orders.export, timeout: 30s, async: {after: 1s, keep: 5m, timeout: 30s}}
  - {method: orders.v1.OrderService/ListOrders, to: legacy, shadow: true, exchange: soak, routing_key: orders.listed}
  - {method: orders.v1.OrderService/CancelOrder, exchange: soak, routing_key: orders.cancel, timeout: 30s, weight: WEIGHT}
topology:
  exchanges: [{name: soak, type: topic}]
  queues: [{name: soak.requests, type: quorum, bind: {exchange: soak, key: "orders.#"}}]
`

// requestQueue is the quorum queue of soakRoutes.
const requestQueue = "soak.requests"

// replica is one `figway serve` process of the soak.
type replica struct {
	*figway.Proc
	name   string
	addrs  figway.Addrs
	path   string // its routes file
	urls   []string
	legacy string
	orders ordersv1.OrderServiceClient
}

// startReplica runs bin as `figway serve` with soakRoutes (the canary at
// weight %) and waits until it is ready.
func startReplica(t *testing.T, bin, name string, urls []string, legacy string, weight int) *replica {
	t.Helper()
	r := &replica{name: name, addrs: figway.NewAddrs(t), path: filepath.Join(t.TempDir(), name+".yaml"), urls: urls, legacy: legacy}
	r.write(t, weight)
	r.Proc = figway.Run(t, bin, r.path, r.addrs)
	r.orders = ordersv1.NewOrderServiceClient(figway.Dial(t, r.addrs.GRPC))
	return r
}

// write writes the replica's routes file, the canary at weight %, by a
// rename: figway sees a whole file.
func (r *replica) write(t *testing.T, weight int) {
	t.Helper()
	quoted := make([]string, len(r.urls))
	for i, u := range r.urls {
		quoted[i] = strconv.Quote(u)
	}
	routes := strings.NewReplacer("GRPC", r.addrs.GRPC, "HTTP", r.addrs.HTTP, "ADMIN", r.addrs.Admin, "DESC", figway.Descriptors,
		"URLS", strings.Join(quoted, ", "), "LEGACY", r.legacy, "WEIGHT", strconv.Itoa(weight)).Replace(soakRoutes)
	tmp := r.path + ".new"
	if err := os.WriteFile(tmp, []byte(routes), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.path); err != nil {
		t.Fatal(err)
	}
}

// reloads returns the replica's reloads by result (ok, failed).
func (r *replica) reloads() (ok, failed float64, err error) {
	s, err := prom.Fetch("http://" + r.addrs.Admin + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	return s.Value("figway_config_reloads_total", "result", "ok"), s.Value("figway_config_reloads_total", "result", "failed"), nil
}

// usage is what a replica holds at one moment.
type usage struct {
	at                time.Duration // since the load began
	rss               float64       // bytes
	goroutines, files float64
}

// usage reads the replica's resident memory, goroutines and open
// descriptors from its /metrics (the Go and process collectors).
func (r *replica) usage(at time.Duration) (usage, error) {
	s, err := prom.Fetch("http://" + r.addrs.Admin + "/metrics")
	if err != nil {
		return usage{}, err
	}
	return usage{at: at, rss: s.Value("process_resident_memory_bytes"), goroutines: s.Value("go_goroutines"),
		files: s.Value("process_open_fds")}, nil
}

// legacyService is the legacy side: ListOrders (the shadowed route) and
// CancelOrder (the canary's other side) answer at once.
type legacyService struct {
	ordersv1.UnimplementedOrderServiceServer
}

func (legacyService) ListOrders(_ context.Context, r *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
	return &ordersv1.ListOrdersResponse{Orders: []*ordersv1.Order{{OrderId: r.CustomerId}}}, nil
}

func (legacyService) CancelOrder(_ context.Context, r *ordersv1.CancelOrderRequest) (*ordersv1.Order, error) {
	return &ordersv1.Order{OrderId: r.OrderId, Note: "legacy"}, nil
}

// startLegacy serves legacyService on a loopback port until the test ends
// and returns its address.
func startLegacy(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	ordersv1.RegisterOrderServiceServer(s, legacyService{})
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(l) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return l.Addr().String()
}

// consumed counts what the workers took off the queue, by kind.
type consumed struct {
	mu      sync.Mutex
	events  map[string]int // event id → times consumed
	shadows int            // shadow copies of ListOrders
}

// startWorker runs a Go SDK worker on urls until the test ends: GetOrder
// and CancelOrder answer with the request's id, ExportOrders after
// 200 ms, and PlaceOrder and the shadow copies are counted in seen. It
// returns the worker's log (warnings: its lost connections).
func startWorker(t *testing.T, name string, urls []string, seen *consumed) *proc.SyncBuffer {
	t.Helper()
	log := new(proc.SyncBuffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker %s's log:\n%s", name, log.String())
		}
	})
	w := worker.New(worker.Config{URLs: urls, Queue: requestQueue, Concurrency: 64, ShutdownGrace: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	worker.Handle(w, "orders.v1.OrderService/GetOrder", func(ctx context.Context, r *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
		return &ordersv1.Order{OrderId: r.OrderId}, nil
	})
	worker.Handle(w, "orders.v1.OrderService/CancelOrder", func(ctx context.Context, r *ordersv1.CancelOrderRequest) (*ordersv1.Order, error) {
		return &ordersv1.Order{OrderId: r.OrderId, Note: "broker"}, nil
	})
	worker.Handle(w, "orders.v1.OrderService/ExportOrders", func(ctx context.Context, r *ordersv1.ExportOrdersRequest) (*ordersv1.ExportOrdersResponse, error) {
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &ordersv1.ExportOrdersResponse{Csv: r.CustomerId}, nil
	})
	worker.Handle(w, "orders.v1.OrderService/PlaceOrder", func(ctx context.Context, r *ordersv1.PlaceOrderRequest) (*ordersv1.Order, error) {
		seen.mu.Lock()
		seen.events[worker.EventID(ctx)]++
		seen.mu.Unlock()
		return &ordersv1.Order{}, nil
	})
	worker.Handle(w, "orders.v1.OrderService/ListOrders", func(ctx context.Context, r *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
		seen.mu.Lock()
		seen.shadows++
		seen.mu.Unlock()
		return &ordersv1.ListOrdersResponse{}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker %s: %v", name, err)
		}
	})
	poll.Until(t, time.Minute, "worker "+name+" consuming", func() bool { return w.Stats().Connects > 0 })
	return log
}

// workerLosses returns when a worker's log says its connection failed
// (slog's text lines: time=... level=WARN msg="broker connection failed...").
func workerLosses(log string) []time.Time {
	var at []time.Time
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="broker connection failed`) {
			continue
		}
		v, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			at = append(at, t)
		}
	}
	return at
}

// restClient is the REST callers' client: enough idle connections per
// replica that the callers keep theirs, so that the replicas' descriptors
// count connections that live, not churn.
func restClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// order returns urls rotated to start at i: replicas and workers start with
// different nodes.
func order(urls []string, i int) []string {
	return append(slices.Clone(urls[i:]), urls[:i]...)
}

// waitOnline waits until every member of quorum queue name is online
// (rabbitmqctl list_queues online), and returns how long that took.
func waitOnline(t *testing.T, ctx context.Context, c *rabbitmq.Cluster, name string) time.Duration {
	t.Helper()
	return poll.Until(t, 3*time.Minute, "queue "+name+" members online", func() bool { return c.QueueOnline(ctx, name) })
}

func fmtBytes(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
