package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/figway/figway/resilience"
)

// Ramp moves a broker route's share of calls from legacy to the broker
// step by step, while the route's gate holds (YAML ramp;
// docs/migration.md, "Ramps"). The weight of a ramped route comes from
// the gateway's [Ramps] port, not from Weight.
type Ramp struct {
	// Steps are the percentages of calls sent to the broker, one step
	// after another: increasing, from 1 to 100, the last one 100.
	Steps []int
	// Every is how long the ramp stays at a step whose gate holds before
	// it moves to the next. If Every is 0, 10m is used.
	Every time.Duration
	Gate  Gate
	// OnBreach is what a breach of the gate does before the ramp pauses.
	// If OnBreach is empty, BreachRollback is used.
	OnBreach Breach
}

// Gate is what a ramp's step must hold, judged on the calls of every
// figway serving the route since the step began.
type Gate struct {
	// MinCalls is how many broker-side calls the step needs before it is
	// judged (YAML min_calls). If MinCalls is 0, 100 is used.
	MinCalls int
	// MaxErrorRate is the largest share of broker-side calls that may fail
	// as the breaker counts failures, 0 to 1 (YAML max_error_rate, written
	// 0.5%); nil: not judged.
	MaxErrorRate *float64
	// MaxP99 bounds the broker side's 99th percentile latency (YAML
	// max_p99); 0: not judged.
	MaxP99 time.Duration
	// MaxP99VsLegacy bounds the broker side's p99 as a multiple of
	// legacy's over the same window (YAML max_p99_vs_legacy); 0: not
	// judged.
	MaxP99VsLegacy float64
	// MaxShadowMismatch is the largest share of compared shadow copies
	// whose reply differs from legacy's, 0 to 1 (YAML
	// max_shadow_mismatch); nil: not judged. Needs shadow and compare.
	MaxShadowMismatch *float64
}

// Breach is what a ramp does when a step breaks its gate.
type Breach string

const (
	// BreachRollback goes back to the previous step (from the first step:
	// to 0 %).
	BreachRollback Breach = "rollback"
	// BreachHold stays at the step.
	BreachHold Breach = "hold"
	// BreachZero sends every call to legacy.
	BreachZero Breach = "zero"
)

// Defaults of a Ramp's zero fields.
const (
	DefaultRampEvery    = 10 * time.Minute
	DefaultRampMinCalls = 100
)

// Ramps is the port through which the gateway learns the weight of its
// ramped routes and reports their calls. The ramp package implements it;
// it keeps the ramps' state, shared by every figway, on a log.
type Ramps interface {
	// Weight returns the percentage of the calls of method sent to the
	// broker now, 0 to 100.
	Weight(method string) int
	// Begin notes that a broker-side call of method starts, and returns
	// the id its Observation carries as Begun: until then the gate judges
	// the call at its age, so that calls that hang are seen before they
	// end.
	Begin(method string) uint64
	// Observe takes the outcome of one call of method's route.
	Observe(method string, o Observation)
}

// Observation is the outcome of one call of a ramped route, as its gate
// judges it.
type Observation struct {
	// Side is where the call went; empty for a compared shadow copy.
	Side Target
	// Begun is what Begin returned for a broker-side call.
	Begun uint64
	// Ignored: a broker-side call that ended in a way the route's breaker
	// does not count (the caller gave up); the gate does not count it
	// either.
	Ignored bool
	// Failed: a broker-side call that failed as the route's breaker counts
	// failures.
	Failed bool
	// Latency is the time the call took on its side.
	Latency time.Duration
	// Compared: a shadow copy whose reply was compared with legacy's;
	// Mismatched, one whose reply differed.
	Compared, Mismatched bool
}

// Ramped reports whether the route's weight follows a ramp.
func (r *Route) Ramped() bool { return r.Ramp != nil }

// weight returns the percentage of r's calls sent to the broker: its
// ramp's current step, or its Weight.
func (g *Gateway) weight(r *Route) int {
	if r.Ramp != nil {
		if g.ramps == nil {
			return r.Ramp.Steps[0]
		}
		return g.ramps.Weight(r.Method)
	}
	return *r.Weight
}

// rampBroker runs a call of a ramped route that the split sent to the
// broker, and reports its outcome to the ramp.
func (g *Gateway) rampBroker(ctx context.Context, r *Route, c *Call) (*Result, error) {
	if g.ramps == nil {
		return g.viaBroker(ctx, r, c)
	}
	start, id := time.Now(), g.ramps.Begin(r.Method)
	res, err := g.viaBroker(ctx, r, c)
	o := breakerOutcome(err)
	g.ramps.Observe(r.Method, Observation{Side: TargetBroker, Begun: id, Ignored: o == resilience.Ignored,
		Failed: o == resilience.Failure, Latency: time.Since(start)})
	return res, err
}

// rampLegacy runs a call of a ramped route that the split left to legacy
// — mirrored to the broker when the route shadows — and reports its
// latency to the ramp.
func (g *Gateway) rampLegacy(ctx context.Context, r *Route, c *Call) (*Result, error) {
	start := time.Now()
	var res *Result
	var err error
	if r.Shadow {
		res, err = g.shadow(ctx, r, c)
	} else {
		res, err = g.viaLegacy(ctx, r, c)
	}
	if g.ramps != nil && err == nil {
		g.ramps.Observe(r.Method, Observation{Side: TargetLegacy, Latency: time.Since(start)})
	}
	return res, err
}

// observeCompare reports a compared shadow copy of a ramped route.
func (g *Gateway) observeCompare(r *Route, mismatched bool) {
	if r.Ramp != nil && g.ramps != nil {
		g.ramps.Observe(r.Method, Observation{Compared: true, Mismatched: mismatched})
	}
}

// String is the ramp as figway routes prints it.
func (rp *Ramp) String() string {
	return fmt.Sprintf("steps %v every %s, on_breach %s", rp.Steps, rp.Every, rp.OnBreach)
}
