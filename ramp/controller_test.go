package ramp_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	. "github.com/figway/figway/ramp"
)

// memLog is an in-memory Log that delivers every record, in order, to
// every controller reading it: the order a stream gives its readers.
type memLog struct {
	mu      sync.Mutex
	records []*Record
	readers []*Controller
	fail    bool
}

func (l *memLog) Append(_ context.Context, r *Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail {
		return errors.New("log down")
	}
	cp := *r
	l.records = append(l.records, &cp)
	for _, c := range l.readers {
		c.Apply(&cp)
	}
	return nil
}

// attach adds c as a reader, replays the log into it and marks it caught
// up, as a figway that connects to the stream.
func (l *memLog) attach(c *Controller) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		c.Apply(r)
	}
	l.readers = append(l.readers, c)
	c.CaughtUp()
}

func (l *memLog) events() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		if r.Kind == KindState {
			out = append(out, r.Event)
		}
	}
	return out
}

const rampRoutes = `
descriptors: ["DESC"]
broker: {url: "amqp://127.0.0.1:1/"}
legacy: {grpc: "127.0.0.1:1"}
routes:
  - method: orders.v1.OrderService/GetOrder
    exchange: orders
    routing_key: orders.get
    sticky_by: x-user
    ramp:
      steps: [1, 5, 25, 50, 100]
      every: 10s
      gate: {min_calls: 20, max_error_rate: 5%, max_p99: 250ms, max_p99_vs_legacy: 3}
      ON_BREACH
`

var quiet = slog.New(slog.DiscardHandler)

const getOrder = "orders.v1.OrderService/GetOrder"

func table(t *testing.T, onBreach string) *gateway.Table {
	t.Helper()
	desc, _ := filepath.Abs("../examples/orders/orders.binpb")
	yaml := strings.NewReplacer("DESC", desc, "ON_BREACH", onBreach).Replace(rampRoutes)
	path := filepath.Join(t.TempDir(), "figway.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := cfg.Table(nil)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// clock is a test's time, moved by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// replicas returns n controllers on one log and one route table.
func replicas(t *testing.T, n int, onBreach string) ([]*Controller, *memLog, *clock) {
	tb := table(t, onBreach)
	log, clk := &memLog{}, &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var cs []*Controller
	for i := range n {
		c := New(Config{Log: log, Table: func() *gateway.Table { return tb }, Replica: string(rune('a' + i)), Now: clk.Now, Logger: quiet})
		log.attach(c)
		cs = append(cs, c)
	}
	return cs, log, clk
}

func calls(c *Controller, n int, failed bool, latency time.Duration) {
	for range n {
		c.Observe(getOrder, gateway.Observation{Side: gateway.TargetBroker, Failed: failed, Latency: latency})
		c.Observe(getOrder, gateway.Observation{Side: gateway.TargetLegacy, Latency: 10 * time.Millisecond})
	}
}

func tickAll(cs []*Controller) {
	for _, c := range cs {
		c.Tick(context.Background())
	}
}

// TestRampWalksAllSteps: two figways, each with half the calls, step
// together once a step held its gate for every, with min_calls counted
// over both; each interval gives one step, however many figways judge.
func TestRampWalksAllSteps(t *testing.T) {
	cs, log, clk := replicas(t, 2, "")
	tickAll(cs) // both try to start: one start is taken
	if got := cs[0].Weight(getOrder); got != 1 {
		t.Fatalf("weight after start = %d; want 1", got)
	}
	for i, want := range []int{5, 25, 50, 100} {
		// 10 calls on each figway: 20 in all, min_calls.
		calls(cs[0], 10, false, 5*time.Millisecond)
		calls(cs[1], 10, false, 5*time.Millisecond)
		clk.add(time.Second)
		tickAll(cs) // figures appended; not yet every
		if got := cs[1].Weight(getOrder); got != []int{1, 5, 25, 50, 100}[i] {
			t.Fatalf("step %d: weight %d before every passed", i, got)
		}
		clk.add(10 * time.Second)
		tickAll(cs)
		tickAll(cs)
		for j, c := range cs {
			if got := c.Weight(getOrder); got != want {
				t.Fatalf("step %d: figway %d weight = %d; want %d (events %v)", i, j, got, want, log.events())
			}
		}
	}
	want := "start step step step done"
	if got := strings.Join(log.events(), " "); got != want {
		t.Errorf("events on the log = %q; want %q (one step per interval)", got, want)
	}
	st, _ := cs[0].Status(getOrder)
	if !st.Done || st.NextStepIn != nil || st.Counts["step"] != 3 || st.Counts["done"] != 1 {
		t.Errorf("status = %+v; want done, 3 steps and done counted", st)
	}
}

// TestRampNeedsAllFigwaysFigures: one figway's share is under min_calls;
// the step is taken once the other's figures are on the log.
func TestRampNeedsAllFigwaysFigures(t *testing.T) {
	cs, _, clk := replicas(t, 2, "")
	tickAll(cs)
	calls(cs[0], 12, false, time.Millisecond)
	clk.add(11 * time.Second)
	tickAll(cs)
	if got := cs[0].Weight(getOrder); got != 1 {
		t.Fatalf("weight = %d with 12 of 20 calls; want 1", got)
	}
	calls(cs[1], 8, false, time.Millisecond)
	clk.add(time.Second)
	cs[1].Tick(context.Background()) // its figures reach the log
	cs[0].Tick(context.Background()) // judged on both
	if got := cs[0].Weight(getOrder); got != 5 {
		t.Fatalf("weight = %d with 20 calls from two figways; want 5", got)
	}
}

// TestRampBreach: each gate's breach applies on_breach at once, before
// every, and pauses the ramp with its reason; resume starts the window
// again.
func TestRampBreach(t *testing.T) {
	for _, tc := range []struct {
		name, onBreach string
		failed         bool
		latency        time.Duration
		wantWeight     int
		wantReason     string
	}{
		{"errors", "", true, time.Millisecond, 1, "error rate 100 % > 5 % at 5 %"},
		{"p99", "", false, 400 * time.Millisecond, 1, "p99 4"},
		{"p99 hold", "on_breach: hold", false, 400 * time.Millisecond, 5, "> 250 ms at 5 %"},
		{"errors zero", "on_breach: zero", true, time.Millisecond, 0, "error rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, _, clk := replicas(t, 2, tc.onBreach)
			tickAll(cs)
			if _, err := cs[0].Act(context.Background(), getOrder, ActionPromote, ""); err != nil {
				t.Fatal(err)
			}
			calls(cs[0], 10, tc.failed, tc.latency)
			calls(cs[1], 10, tc.failed, tc.latency)
			clk.add(time.Second)
			tickAll(cs)
			tickAll(cs)
			for i, c := range cs {
				st, _ := c.Status(getOrder)
				if st.Weight != tc.wantWeight || !st.Paused || !strings.Contains(st.Reason, tc.wantReason) {
					t.Fatalf("figway %d: %d %%, paused %v, %q; want %d %%, paused, %q", i, st.Weight, st.Paused, st.Reason, tc.wantWeight, tc.wantReason)
				}
			}
			t.Logf("reason: %s", must(cs[0].Status(getOrder)).Reason)
			// Paused: no step however long.
			clk.add(time.Minute)
			tickAll(cs)
			if st := must(cs[1].Status(getOrder)); st.Weight != tc.wantWeight || !st.Paused {
				t.Fatalf("paused ramp moved: %+v", st)
			}
			st, err := cs[1].Act(context.Background(), getOrder, ActionResume, "fixed")
			if err != nil || st.Paused || st.Gate.Calls != 0 {
				t.Fatalf("resume = %+v, %v; want not paused, a new window", st, err)
			}
		})
	}
}

func must(s Status, _ bool) Status { return s }

// TestRampJudgesRunningCalls: calls still running count at their age so
// far. A worker that turns slow just after a step holds its calls; the
// fast calls that end meanwhile alone would let the step pass (and, at
// every, promote it). Here 16 fast calls ended and 4 are still running
// on one figway: the gate breaches once the 4 have run longer than
// max_p99, and both figways roll back.
func TestRampJudgesRunningCalls(t *testing.T) {
	cs, _, clk := replicas(t, 2, "")
	tickAll(cs)
	if _, err := cs[0].Act(context.Background(), getOrder, ActionPromote, ""); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		cs[0].Begin(getOrder)
	}
	calls(cs[0], 16, false, time.Millisecond)
	clk.add(20 * time.Millisecond)
	tickAll(cs)
	if st := must(cs[0].Status(getOrder)); st.Paused || st.Gate.Running != 4 || st.Gate.Calls+st.Gate.Running != 20 {
		t.Fatalf("running 20 ms (max_p99 250 ms, 3 × legacy's 10 ms): %+v; want not paused, 4 running of 20", st.Gate)
	}
	clk.add(time.Second) // running 1.02 s
	tickAll(cs)
	tickAll(cs)
	for i, c := range cs {
		if st := must(c.Status(getOrder)); st.Weight != 1 || !st.Paused || !strings.HasPrefix(st.Reason, "p99 10") || !strings.Contains(st.Reason, "> 250 ms at 5 %") {
			t.Fatalf("figway %d with 4 calls running 1.02 s: %d %%, paused %v, %q; want rolled back to 1 %%, paused on p99 of about 1 s", i, st.Weight, st.Paused, st.Reason)
		}
	}

	// Calls that end leave the running set: the same calls, ended fast,
	// hold the gate.
	cs, _, clk = replicas(t, 2, "")
	tickAll(cs)
	for range 4 {
		id := cs[0].Begin(getOrder)
		cs[0].Observe(getOrder, gateway.Observation{Side: gateway.TargetBroker, Begun: id, Latency: time.Millisecond})
	}
	// A call the caller gave up leaves it too, uncounted.
	cs[0].Observe(getOrder, gateway.Observation{Side: gateway.TargetBroker, Begun: cs[0].Begin(getOrder), Ignored: true})
	calls(cs[0], 16, false, time.Millisecond)
	clk.add(2 * time.Second)
	tickAll(cs)
	if st := must(cs[0].Status(getOrder)); st.Paused || st.Gate.Running != 0 || st.Gate.Calls != 20 {
		t.Fatalf("every call ended: %+v; want not paused, 20 calls, none running", st.Gate)
	}
}

// TestRampActions: promote, rollback (which pauses), pause, resume, and
// the refusals.
func TestRampActions(t *testing.T) {
	cs, log, _ := replicas(t, 2, "")
	ctx := context.Background()
	tb := table(t, "")
	unread := New(Config{Log: log, Table: func() *gateway.Table { return tb }, Replica: "z", Logger: quiet})
	if _, err := unread.Act(ctx, getOrder, ActionPromote, ""); !errors.Is(err, ErrNotReady) {
		t.Fatalf("promote before the log is read = %v; want ErrNotReady", err)
	}
	// An action before the first judgement starts the ramp first.
	if st, err := cs[0].Act(ctx, getOrder, ActionPromote, ""); err != nil || st.Weight != 5 {
		t.Fatalf("promote before the start = %+v, %v; want 5 %%", st, err)
	}
	tickAll(cs)
	steps := []struct {
		action string
		weight int
		paused bool
		err    error
	}{
		{ActionResume, 5, false, ErrConflict},
		{ActionPromote, 25, false, nil},
		{ActionPromote, 50, false, nil},
		{ActionRollback, 25, true, nil},
		{ActionPause, 25, true, ErrConflict},
		{ActionResume, 25, false, nil},
		{ActionPause, 25, true, nil},
		{"jump", 25, true, ErrUnknownAction},
	}
	for _, s := range steps {
		_, err := cs[1].Act(ctx, getOrder, s.action, "")
		if !errors.Is(err, s.err) {
			t.Fatalf("%s = %v; want %v", s.action, err, s.err)
		}
		for i, c := range cs {
			if st := must(c.Status(getOrder)); st.Weight != s.weight || st.Paused != s.paused {
				t.Fatalf("after %s, figway %d: %d %% paused %v; want %d %% paused %v", s.action, i, st.Weight, st.Paused, s.weight, s.paused)
			}
		}
	}
	if _, err := cs[0].Act(ctx, "orders.v1.OrderService/ListOrders", ActionPause, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("pause of a route without a ramp = %v; want ErrNotFound", err)
	}
	t.Logf("events: %v", log.events())
}

// TestRampRestartResumes: a figway that starts reads the log and serves
// the ramp's step at once.
func TestRampRestartResumes(t *testing.T) {
	cs, log, clk := replicas(t, 1, "")
	tickAll(cs)
	for range 2 {
		if _, err := cs[0].Act(context.Background(), getOrder, ActionPromote, ""); err != nil {
			t.Fatal(err)
		}
	}
	tb := table(t, "")
	restarted := New(Config{Log: log, Table: func() *gateway.Table { return tb }, Replica: "a2", Now: clk.Now, Logger: quiet})
	if got := restarted.Weight(getOrder); got != 1 {
		t.Errorf("weight before the log is read = %d; want the first step, 1", got)
	}
	log.attach(restarted)
	if got := restarted.Weight(getOrder); got != 25 {
		t.Errorf("weight after the log is read = %d; want 25", got)
	}
	restarted.Tick(context.Background())
	if got := strings.Join(log.events(), " "); got != "start promote promote" {
		t.Errorf("events = %q; a restart appends nothing", got)
	}
}

// TestRampReconfigure: a figway whose routes file changes the steps moves
// the ramp to the largest new step not above its weight; a figway with
// the old steps follows.
func TestRampReconfigure(t *testing.T) {
	cs, log, clk := replicas(t, 1, "")
	tickAll(cs)
	for range 3 {
		cs[0].Act(context.Background(), getOrder, ActionPromote, "")
	}
	if got := cs[0].Weight(getOrder); got != 50 {
		t.Fatalf("weight = %d; want 50", got)
	}
	tb := table(t, "")
	tb.Lookup(getOrder).Ramp.Steps = []int{10, 40, 70, 100}
	clk.add(time.Second)
	newer := New(Config{Log: log, Table: func() *gateway.Table { return tb }, Replica: "b", Now: clk.Now, Logger: quiet})
	log.attach(newer)
	newer.Tick(context.Background())
	cs[0].Tick(context.Background())
	for _, c := range []*Controller{cs[0], newer} {
		if st := must(c.Status(getOrder)); st.Weight != 40 || st.Steps[1] != 40 {
			t.Errorf("after reconfigure: %d %% of %v; want 40 %% of [10 40 70 100]", st.Weight, st.Steps)
		}
	}
	if got := strings.Join(log.events(), " "); got != "start promote promote promote reconfigure" {
		t.Errorf("events = %q; want one reconfigure", got)
	}
}
