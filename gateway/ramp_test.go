package gateway_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
)

// fixedRamps is a gateway.Ramps whose weight the test sets, and which
// counts what it observes.
type fixedRamps struct {
	weight           atomic.Int32
	mu               sync.Mutex
	broker, legacy   int
	failed, compared int
}

func (f *fixedRamps) Weight(string) int { return int(f.weight.Load()) }

func (f *fixedRamps) Begin(string) uint64 { return 0 }

func (f *fixedRamps) Observe(_ string, o gateway.Observation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o.Ignored {
		return
	}
	switch {
	case o.Compared:
		f.compared++
	case o.Side == gateway.TargetBroker:
		f.broker++
		if o.Failed {
			f.failed++
		}
	case o.Side == gateway.TargetLegacy:
		f.legacy++
	}
}

const rampRoute = "  - {method: " + getOrder + ", routing_key: k, sticky_by: x-user, pin_by: x-pin, ramp: {steps: [1, 5, 25, 50, 100], every: 1m}}\n"

// rampTable is the table of rampRoute, with a legacy upstream.
func rampTable(t *testing.T) *gateway.Table {
	t.Helper()
	file := "descriptors: [orders.binpb]\nbroker: {url: \"amqp://guest:guest@127.0.0.1:5672/\"}\nlegacy: {grpc: 127.0.0.1:1}\nroutes:\n" + rampRoute
	cfg, err := config.Parse([]byte(file), "../examples/orders")
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	tb, err := cfg.Table(nil)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// sides returns the side each of n callers' calls went to at the
// gateway's weight now: true for the broker.
func sides(t *testing.T, g *gateway.Gateway, p *publisher, n int, pin string) []bool {
	t.Helper()
	out := make([]bool, n)
	for i := range n {
		c := call(getOrder)
		user := fmt.Sprintf("user-%d", i)
		c.Header = func(k string) []string {
			switch {
			case k == "x-user":
				return []string{user}
			case k == "x-pin" && pin != "":
				return []string{pin}
			}
			return nil
		}
		before := p.calls.Load()
		if _, err := g.Invoke(context.Background(), c); err != nil {
			t.Fatalf("call of %s: %v", user, err)
		}
		out[i] = p.calls.Load() > before
	}
	return out
}

// TestRampKeepsCallersPut: with sticky_by, a caller a step sends to the
// broker is sent there at every higher step; a rollback moves back only
// the callers the last step added; a pinned caller never moves.
func TestRampKeepsCallersPut(t *testing.T) {
	const callers = 2000
	ramps := &fixedRamps{}
	p := &publisher{fn: replyOK}
	g := gateway.New(gateway.Options{Publisher: p, Table: rampTable(t), Legacy: &legacyOK{}, Ramps: ramps})
	steps := []int{1, 5, 25, 50, 100}
	var prev []bool
	at := map[int][]bool{}
	for _, w := range steps {
		ramps.weight.Store(int32(w))
		now := sides(t, g, p, callers, "")
		n := 0
		for i, b := range now {
			if b {
				n++
			}
			if prev != nil && prev[i] && !b {
				t.Fatalf("caller %d went to the broker at the step before %d %% and to legacy at %d %%", i, w, w)
			}
		}
		share := float64(n) / callers * 100
		t.Logf("weight %d %%: %d of %d callers on the broker (%.1f %%)", w, n, callers, share)
		if share < float64(w)-5 || share > float64(w)+5 {
			t.Errorf("weight %d %%: %.1f %% of the callers on the broker; want ±5 points", w, share)
		}
		at[w], prev = now, now
	}
	// Roll back from 50 to 25: exactly the callers 50 added go back.
	ramps.weight.Store(25)
	back := sides(t, g, p, callers, "")
	moved := 0
	for i := range back {
		if back[i] != at[25][i] {
			t.Fatalf("after the rollback to 25 %%, caller %d is on the broker: %v; at 25 %% it was %v", i, back[i], at[25][i])
		}
		if at[50][i] && !back[i] {
			moved++
		}
	}
	t.Logf("rollback 50 → 25 %%: %d callers moved back to legacy, every one of them added by the step to 50 %%", moved)
	// Pinned callers stay where they pin, whatever the step.
	for _, w := range []int{1, 100} {
		ramps.weight.Store(int32(w))
		for _, pin := range []string{"broker", "legacy"} {
			for i, b := range sides(t, g, p, 50, pin) {
				if b != (pin == "broker") {
					t.Fatalf("caller %d pinned to %s went elsewhere at %d %%", i, pin, w)
				}
			}
		}
	}
	ramps.mu.Lock()
	defer ramps.mu.Unlock()
	if ramps.broker == 0 || ramps.legacy == 0 || ramps.failed != 0 {
		t.Errorf("observed %d broker calls (%d failed), %d legacy calls; want both sides, none failed", ramps.broker, ramps.failed, ramps.legacy)
	}
}

// TestRampObservesFailures: a broker-side failure as the breaker counts
// it is observed as failed; figway's own link failing is not observed.
func TestRampObservesFailures(t *testing.T) {
	ramps := &fixedRamps{}
	ramps.weight.Store(100)
	for _, tc := range []struct {
		err          error
		calls, fails int
	}{{errReturned, 1, 1}, {errLost, 0, 0}} {
		*ramps = fixedRamps{}
		ramps.weight.Store(100)
		p := &publisher{fn: failWith(tc.err)}
		g := gateway.New(gateway.Options{Publisher: p, Table: rampTable(t), Legacy: &legacyOK{}, Ramps: ramps})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		g.Invoke(ctx, call(getOrder))
		cancel()
		if ramps.broker != tc.calls || ramps.failed != tc.fails {
			t.Errorf("%v: observed %d calls, %d failed; want %d, %d", tc.err, ramps.broker, ramps.failed, tc.calls, tc.fails)
		}
	}
}
