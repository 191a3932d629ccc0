package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
)

// A kind of call of the mixed load.
type kind string

const (
	grpcRPC   kind = "gRPC rpc (GetOrder)"
	restRPC   kind = "REST rpc (GET /v1/orders/{id})"
	event     kind = "event (PlaceOrder)"
	asyncOp   kind = "async operation (POST /v1/orders:export)"
	shadowed  kind = "shadowed (ListOrders)"
	canaryRPC kind = "canary (CancelOrder)"
)

// kinds lists the kinds in the table's order, each with its callers.
var kinds = []struct {
	kind    kind
	callers int
}{{grpcRPC, 16}, {restRPC, 8}, {event, 8}, {asyncOp, 4}, {shadowed, 4}, {canaryRPC, 4}}

// pace is the pause of each caller between two calls: the soak is a
// steady load, not a benchmark.
const pace = 20 * time.Millisecond

// failure is one failed call.
type failure struct {
	kind       kind
	start, end time.Time
	code       codes.Code
	err        error
	inWindow   int
}

// tally is the load's outcomes: calls by kind and outcome, latencies of
// successful calls by kind and window, the failures, and the confirmed
// events.
type tally struct {
	begin  time.Time
	window time.Duration

	mu        sync.Mutex
	outcomes  map[kind]map[string]int
	latencies map[kind][][]time.Duration // by window
	failures  []failure
	confirmed map[string]bool // event ids figway confirmed
}

func newTally(begin time.Time, window time.Duration, windows int) *tally {
	t := &tally{begin: begin, window: window, outcomes: map[kind]map[string]int{}, latencies: map[kind][][]time.Duration{}, confirmed: map[string]bool{}}
	for _, k := range kinds {
		t.outcomes[k.kind] = map[string]int{}
		t.latencies[k.kind] = make([][]time.Duration, windows)
	}
	return t
}

// record counts one call of k that started at start and ended now with
// outcome ("ok", or a finer success such as "legacy") or err.
func (t *tally) record(k kind, start time.Time, outcome string, err error) {
	end := time.Now()
	w := min(int(end.Sub(t.begin)/t.window), len(t.latencies[k])-1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		code := status.Code(err)
		t.outcomes[k][code.String()]++
		t.failures = append(t.failures, failure{kind: k, start: start, end: end, code: code, err: err, inWindow: w})
		return
	}
	t.outcomes[k][outcome]++
	t.latencies[k][w] = append(t.latencies[k][w], end.Sub(start))
}

// gate lets the sampler stop the load for a moment: each call holds it
// shared, the sampler exclusively.
type gate struct{ sync.RWMutex }

// runCallers starts n callers of call until ctx ends, each pausing pace
// between calls; call gets the caller's number and its call's.
func runCallers(ctx context.Context, wg *sync.WaitGroup, g *gate, n int, call func(caller, seq int)) {
	for i := range n {
		wg.Go(func() {
			for j := 0; ctx.Err() == nil; j++ {
				g.RLock()
				call(i, j)
				g.RUnlock()
				select {
				case <-ctx.Done():
				case <-time.After(pace):
				}
			}
		})
	}
}

// callTimeout bounds each call of the load: well past the routes'
// timeouts, so that a call that hangs shows as DEADLINE_EXCEEDED.
const callTimeout = time.Minute

// grpcGet calls GetOrder on r and checks the reply is the caller's.
func (t *tally) grpcGet(r *replica) func(caller, seq int) {
	return func(caller, seq int) {
		id := fmt.Sprintf("%s-g-%d-%d", r.name, caller, seq)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		start := time.Now()
		o, err := r.orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: id})
		if err == nil && o.OrderId != id {
			err = status.Errorf(codes.DataLoss, "GetOrder(%q) answered with %q: another caller's reply", id, o.OrderId)
		}
		t.record(grpcRPC, start, "OK", err)
	}
}

// restGet calls GET /v1/orders/{id} on r.
func (t *tally) restGet(c *http.Client, r *replica) func(caller, seq int) {
	return func(caller, seq int) {
		id := fmt.Sprintf("%s-r-%d-%d", r.name, caller, seq)
		start := time.Now()
		code, body, _, err := do(c, "GET", "http://"+r.addrs.HTTP+"/v1/orders/"+id, nil)
		if err == nil && (code != http.StatusOK || !strings.Contains(body, id)) {
			err = httpError(code, body)
		}
		t.record(restRPC, start, "OK", err)
	}
}

// place calls PlaceOrder on r and keeps the event's id if confirmed.
func (t *tally) place(r *replica) func(caller, seq int) {
	return func(caller, seq int) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		var header metadata.MD
		start := time.Now()
		_, err := r.orders.PlaceOrder(ctx, &ordersv1.PlaceOrderRequest{CustomerId: fmt.Sprintf("c-%d-%d", caller, seq)}, grpc.Header(&header))
		ids := header.Get("figway-event-id")
		if err == nil && len(ids) != 1 {
			err = status.Errorf(codes.DataLoss, "figway-event-id = %q; want one id", ids)
		}
		if err == nil {
			t.mu.Lock()
			t.confirmed[ids[0]] = true
			t.mu.Unlock()
		}
		t.record(event, start, "OK", err)
	}
}

// export starts an async operation on r (Prefer: respond-async: 202 at
// once) and waits for it on other, as a caller behind a load balancer
// would.
func (t *tally) export(c *http.Client, r, other *replica) func(caller, seq int) {
	return func(caller, seq int) {
		id := fmt.Sprintf("%s-x-%d-%d", r.name, caller, seq)
		start := time.Now()
		code, body, header, err := do(c, "POST", "http://"+r.addrs.HTTP+"/v1/orders:export",
			strings.NewReader(fmt.Sprintf(`{"customerId": %q}`, id)), "Prefer", "respond-async")
		if err == nil && code != http.StatusAccepted {
			err = httpError(code, body)
		}
		if err == nil {
			err = waitOperation(c, "http://"+other.addrs.HTTP+header.Get("Location"), id)
		}
		t.record(asyncOp, start, "OK", err)
	}
}

// waitOperation polls an operation with ?wait= until it is done, and
// returns its error, if any, as a status.
func waitOperation(c *http.Client, url, id string) error {
	deadline := time.Now().Add(callTimeout)
	for time.Now().Before(deadline) {
		code, body, _, err := do(c, "GET", url+"?wait=20s", nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return httpError(code, body)
		}
		var op struct {
			Done     bool `json:"done"`
			Response struct {
				Csv string `json:"csv"`
			} `json:"response"`
			Error *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &op); err != nil {
			return status.Errorf(codes.DataLoss, "not an operation: %v: %s", err, body)
		}
		switch {
		case op.Error != nil:
			return status.Error(codes.Code(op.Error.Code), op.Error.Message)
		case op.Done && op.Response.Csv != id:
			return status.Errorf(codes.DataLoss, "operation of %q answered %s", id, body)
		case op.Done:
			return nil
		}
	}
	return status.Errorf(codes.DeadlineExceeded, "operation %s not done within %v", url, callTimeout)
}

// list calls ListOrders (legacy's, shadowed) on r.
func (t *tally) list(r *replica) func(caller, seq int) {
	return func(caller, seq int) {
		id := fmt.Sprintf("%s-l-%d-%d", r.name, caller, seq)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		start := time.Now()
		res, err := r.orders.ListOrders(ctx, &ordersv1.ListOrdersRequest{CustomerId: id})
		if err == nil && (len(res.Orders) != 1 || res.Orders[0].OrderId != id) {
			err = status.Errorf(codes.DataLoss, "ListOrders(%q) answered %v", id, res.Orders)
		}
		t.record(shadowed, start, "OK", err)
	}
}

// cancel calls CancelOrder (the canary) on r; the outcome says which side
// answered.
func (t *tally) cancel(r *replica) func(caller, seq int) {
	return func(caller, seq int) {
		id := fmt.Sprintf("%s-c-%d-%d", r.name, caller, seq)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		start := time.Now()
		o, err := r.orders.CancelOrder(ctx, &ordersv1.CancelOrderRequest{OrderId: id})
		if err == nil && (o.OrderId != id || (o.Note != "broker" && o.Note != "legacy")) {
			err = status.Errorf(codes.DataLoss, "CancelOrder(%q) answered %v", id, o)
		}
		side := ""
		if err == nil {
			side = "OK (" + o.Note + ")"
		}
		t.record(canaryRPC, start, side, err)
	}
}

// do makes one HTTP request; header is pairs of name and value.
func do(c *http.Client, method, url string, body io.Reader, header ...string) (int, string, http.Header, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, "", nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, status.Error(codes.Unknown, err.Error())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", nil, status.Error(codes.Unknown, err.Error())
	}
	return resp.StatusCode, string(b), resp.Header, nil
}

// httpError is an unexpected REST answer as a status: 503 is UNAVAILABLE
// (docs/errors.md), anything else is named by its HTTP status.
func httpError(code int, body string) error {
	c := codes.Unknown
	switch code {
	case http.StatusServiceUnavailable:
		c = codes.Unavailable
	case http.StatusGatewayTimeout:
		c = codes.DeadlineExceeded
	}
	return status.Errorf(c, "HTTP %d: %.200s", code, body)
}

// percentile returns the p-th percentile of d (sorted in place).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p/100))]
}
