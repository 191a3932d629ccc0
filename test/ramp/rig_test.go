package ramp

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/examples/orders/store"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/prom"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

const getOrder = "orders.v1.OrderService/GetOrder"

// steps are the tests' ramp: every 2s, judged on 30 broker-side calls (under 20 % errors).
var steps = []int{10, 25, 50, 100}

// rampRoutes is the routes file of the tests. Placeholders: GRPC, HTTP,
// ADMIN, DESC, BROKER, LEGACY, ROUTE (more settings of GetOrder's route)
// and GATE (more limits of its gate).
const rampRoutes = `
server: {grpc: "GRPC", http: "HTTP", admin: "ADMIN", shutdown_grace: 2s}
descriptors: ["DESC"]
broker: {url: "BROKER"}
legacy: {grpc: "LEGACY"}
routes:
  - method: orders.v1.OrderService/GetOrder
    exchange: orders
    routing_key: orders.get
    sticky_by: x-user
    timeout: 6s
    ROUTE
    ramp:
      steps: [10, 25, 50, 100]
      every: 2s
      gate: {min_calls: 30, max_error_rate: 20% GATE}
topology:
  exchanges: [{name: orders, type: topic}]
  queues: [{name: orders.requests, bind: {exchange: orders, key: "orders.#"}}]
`

// mode is how the rig's worker answers GetOrder.
type mode int32

const (
	healthy  mode = iota // as legacy does, from the same seeded store
	failing              // UNAVAILABLE: a failure for the breaker
	slow                 // after 3s
	drifting             // a reply whose note differs from legacy's
)

// rig is one RabbitMQ vhost, the demo's legacy service, an SDK worker and
// two figway processes, A and B, serving rampRoutes.
type rig struct {
	t      *testing.T
	url    string
	bin    string
	mode   atomic.Int32
	addrs  [2]figway.Addrs
	paths  [2]string
	procs  [2]*figway.Proc
	legacy string
	// served counts the worker's GetOrder calls, shadow copies included.
	served atomic.Int64
}

func newRig(t *testing.T, route, gate string) *rig {
	begin := time.Now()
	t.Cleanup(func() { t.Logf("rig's processes stopped in %v", time.Since(begin).Round(time.Millisecond)) })
	r := &rig{t: t, url: rabbitmq.ForTest(t).NewVHost(t), bin: proc.BuildFigway(t)}
	defer func() { t.Logf("rig ready in %v", time.Since(begin).Round(time.Millisecond)) }()
	r.legacy = startLegacy(t)
	r.startWorker()
	for i := range r.addrs {
		r.addrs[i] = figway.NewAddrs(t)
		r.paths[i] = r.writeRoutes(r.addrs[i], route, gate)
	}
	for i := range r.procs {
		r.procs[i] = figway.Run(t, r.bin, r.paths[i], r.addrs[i])
	}
	// No call before both figways count the worker's consumer: a call
	// refused for want of one is a failure the gate would judge.
	poll.Until(t, 30*time.Second, "the worker consuming, as both figways count it", func() bool {
		for i := range r.addrs {
			s, err := prom.Fetch("http://" + r.addrs[i].Admin + "/metrics")
			if err != nil || s.Value("figway_route_consumers", "route", getOrder) < 1 {
				return false
			}
		}
		return true
	})
	return r
}

func (r *rig) writeRoutes(a figway.Addrs, route, gate string) string {
	rp := strings.NewReplacer("GRPC", a.GRPC, "HTTP", a.HTTP, "ADMIN", a.Admin, "DESC", figway.Descriptors,
		"BROKER", r.url, "LEGACY", r.legacy, "ROUTE", route, " GATE", gate)
	path := filepath.Join(r.t.TempDir(), "figway.yaml")
	if err := os.WriteFile(path, []byte(rp.Replace(rampRoutes)), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return path
}

// startWorker runs an SDK worker whose GetOrder answers as the rig's
// mode says, from a store seeded as legacy's is.
func (r *rig) startWorker() {
	st := store.New(slog.New(slog.DiscardHandler), nil)
	w := worker.New(worker.Config{URL: r.url, Queue: "orders.requests", Concurrency: 64, Logger: slog.New(slog.DiscardHandler)})
	worker.Handle(w, getOrder, func(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
		r.served.Add(1)
		switch mode(r.mode.Load()) {
		case failing:
			return nil, status.Error(codes.Unavailable, "the new service is down")
		case slow:
			select {
			case <-time.After(3 * time.Second):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		case drifting:
			o, err := st.GetOrder(ctx, req)
			if err == nil {
				o.Note = "drifted"
			}
			return o, err
		}
		return st.GetOrder(ctx, req)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	r.t.Cleanup(func() { cancel(); <-done })
}

// legacyBin is the demo's legacy service, built once per test binary.
var legacyBin struct {
	sync.Mutex
	path string
}

// startLegacy runs the demo's legacy service until the test ends and
// returns its gRPC address.
func startLegacy(t *testing.T) string {
	t.Helper()
	legacyBin.Lock()
	if legacyBin.path == "" {
		dir, err := os.MkdirTemp("", "figway-legacy-")
		if err != nil {
			t.Fatal(err)
		}
		rabbitmq.AfterTests(func() { os.RemoveAll(dir) })
		bin := filepath.Join(dir, "legacy")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/figway/figway/examples/orders/legacy").CombinedOutput(); err != nil {
			legacyBin.Unlock()
			t.Fatalf("go build legacy: %v\n%s", err, out)
		}
		legacyBin.path = bin
	}
	bin := legacyBin.path
	legacyBin.Unlock()
	addr := proc.FreeAddr(t)
	proc.Start(t, "legacy", bin, "-grpc", addr, "-http", proc.FreeAddr(t))
	conn := figway.Dial(t, addr)
	c := ordersv1.NewOrderServiceClient(conn)
	poll.Until(t, 20*time.Second, "legacy answering", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
		return err == nil
	})
	return addr
}

// rampStatus is a ramp as GET /v1/ramps shows it.
type rampStatus struct {
	Method string `json:"method"`
	Step   int    `json:"step"`
	Weight int    `json:"weight"`
	Paused bool   `json:"paused"`
	Done   bool   `json:"done"`
	Reason string `json:"reason"`
	Epoch  uint64 `json:"epoch"`
	Gate   struct {
		Calls       uint64  `json:"calls"`
		Failures    uint64  `json:"failures"`
		Figways     int     `json:"figways"`
		P99Ms       float64 `json:"p99_ms"`
		Compared    uint64  `json:"compared"`
		Mismatched  uint64  `json:"mismatched"`
		LegacyCalls uint64  `json:"legacy_calls"`
	} `json:"gate"`
	Events []struct {
		Event  string `json:"event"`
		Weight int    `json:"weight"`
		Reason string `json:"reason"`
	} `json:"events"`
	Counts map[string]uint64 `json:"event_counts"`
}

// status returns GetOrder's ramp as figway i serves it.
func (r *rig) status(i int) rampStatus {
	r.t.Helper()
	st, err := fetchStatus(r.addrs[i].Admin)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// fetchStatus returns GetOrder's ramp from GET /v1/ramps on admin.
func fetchStatus(admin string) (rampStatus, error) {
	resp, err := http.Get("http://" + admin + "/v1/ramps")
	if err != nil {
		return rampStatus{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var all struct {
		Ramps []rampStatus `json:"ramps"`
	}
	if err := json.Unmarshal(b, &all); err != nil || len(all.Ramps) != 1 {
		return rampStatus{}, fmt.Errorf("GET /v1/ramps = %d %s; want one ramp", resp.StatusCode, b)
	}
	return all.Ramps[0], nil
}

// users are 100 callers whose x-user values hash (FNV-1a, mod 100, as
// sticky_by splits) to 0, 1, … 99: a batch of 100 calls, one per caller,
// sends exactly w % of its calls to the broker at weight w, so the share
// per side can be held to the step without sampling noise.
var users = func() []string {
	out := make([]string, 100)
	found := 0
	for n := 0; found < 100; n++ {
		name := fmt.Sprintf("user-%d", n)
		h := fnv.New64a()
		h.Write([]byte(name))
		if b := h.Sum64() % 100; out[b] == "" {
			out[b] = name
			found++
		}
	}
	return out
}()

// act posts action on GetOrder's ramp to figway i's admin listener.
func (r *rig) act(i int, action string) (int, error) {
	resp, err := http.Post("http://"+r.addrs[i].Admin+"/v1/ramps/"+getOrder+":"+action, "application/json", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("POST :%s = %d %s", action, resp.StatusCode, b)
	}
	return resp.StatusCode, nil
}

// caller sends GetOrder calls to both figways in turn, the k-th as
// users[k%100], and counts the sides.
type caller struct {
	r       *rig
	clients [2]ordersv1.OrderServiceClient
	next    atomic.Int64
	failed  atomic.Int64
}

func (r *rig) caller() *caller {
	c := &caller{r: r}
	for i := range c.clients {
		c.clients[i] = ordersv1.NewOrderServiceClient(figway.Dial(r.t, r.addrs[i].GRPC))
	}
	return c
}

// upTo sends calls, 40 at a time, until figway 0's ramp is at weight or
// above; it fails the test after a minute.
func (c *caller) upTo(weight int) {
	c.r.t.Helper()
	start := time.Now()
	for c.r.status(0).Weight < weight {
		if time.Since(start) > time.Minute {
			c.r.t.Fatalf("the ramp did not reach %d %% in %v: %+v", weight, time.Since(start), c.r.status(0))
		}
		c.batch(40)
	}
}

// toTheEnd sends calls, 40 at a time, until both figways' ramps are done;
// it fails the test if they are not by deadline.
func (c *caller) toTheEnd(deadline time.Time) {
	c.r.t.Helper()
	for !c.r.status(0).Done || !c.r.status(1).Done {
		if time.Now().After(deadline) {
			c.r.t.Fatalf("the ramp is not done: %+v, %+v", c.r.status(0), c.r.status(1))
		}
		c.batch(40)
	}
}

// batch sends n calls, ten at a time, half to each figway.
func (c *caller) batch(n int) {
	const conc = 10
	var wg sync.WaitGroup
	for g := range conc {
		wg.Go(func() {
			for i := g; i < n; i += conc {
				k := c.next.Add(1)
				ctx, cancel := context.WithTimeout(figway.WithMetadata(context.Background(), "x-user", users[k%100]), 10*time.Second)
				_, err := c.clients[k%2].GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
				cancel()
				if err != nil {
					c.failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
}
