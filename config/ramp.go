package config

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/figway/figway/config/yamlfile"
	"github.com/figway/figway/gateway"
)

// Ramp moves a broker route's weight step by step while its gate holds
// (YAML ramp, in a route or in defaults), in the gateway's own type;
// docs/configuration.md, "ramp".
type Ramp = gateway.Ramp

// maxRampSteps bounds the steps of a ramp.
const maxRampSteps = 20

const defaultRampStream = "figway.ramps"

// minRampEvery is the shortest time at a step: figures reach the stream
// about ten times per step, and at least every 500ms.
const minRampEvery = time.Second

func (d *decoder) ramp(v *yamlfile.Value, path string) *Ramp {
	if v == nil || v.Kind == yamlfile.Null {
		return nil
	}
	f := d.Fields(v, path, "steps", "every", "gate", "on_breach")
	rp := &Ramp{
		Steps:    d.rampSteps(f["steps"], yamlfile.Field(path, "steps")),
		Every:    d.Duration(f["every"], yamlfile.Field(path, "every")),
		OnBreach: yamlfile.Enum(d.Decoder, f["on_breach"], yamlfile.Field(path, "on_breach"), gateway.BreachRollback, gateway.BreachHold, gateway.BreachZero),
	}
	if rp.Every > 0 && rp.Every < minRampEvery {
		d.P.At(yamlfile.Field(path, "every"), "must be at least %s, not %s", minRampEvery, rp.Every)
	}
	gp := yamlfile.Field(path, "gate")
	g := d.Fields(f["gate"], gp, "min_calls", "max_error_rate", "max_p99", "max_p99_vs_legacy", "max_shadow_mismatch")
	rp.Gate = gateway.Gate{
		MinCalls:          d.Positive(g["min_calls"], yamlfile.Field(gp, "min_calls"), 100_000_000, ""),
		MaxErrorRate:      d.share(g["max_error_rate"], yamlfile.Field(gp, "max_error_rate"), "broker-side calls that fail"),
		MaxP99:            d.Duration(g["max_p99"], yamlfile.Field(gp, "max_p99")),
		MaxP99VsLegacy:    d.factor(g["max_p99_vs_legacy"], yamlfile.Field(gp, "max_p99_vs_legacy")),
		MaxShadowMismatch: d.share(g["max_shadow_mismatch"], yamlfile.Field(gp, "max_shadow_mismatch"), "compared shadow copies that differ"),
	}
	return rp
}

// rampSteps decodes ramp.steps: increasing percentages from 1 to 100.
func (d *decoder) rampSteps(v *yamlfile.Value, path string) []int {
	items, present := d.Items(v, path)
	if !present {
		return nil
	}
	var steps []int
	for i, it := range items {
		p := yamlfile.Index(path, i)
		n, ok := it.V.(int64)
		if !ok || it.Kind != yamlfile.Scalar {
			d.WrongType(it, p, "an integer from 1 to 100 (percent of calls to the broker)")
			return nil
		}
		if n < 1 || n > 100 {
			d.P.At(p, "must be from 1 to 100 (percent of calls to the broker), not %d", n)
			return nil
		}
		if len(steps) > 0 && int(n) <= steps[len(steps)-1] {
			d.P.At(p, "steps must increase: %d comes after %d", n, steps[len(steps)-1])
			return nil
		}
		steps = append(steps, int(n))
	}
	switch {
	case len(steps) == 0:
		d.P.At(path, "needs at least one step, such as [1, 5, 25, 50, 100]")
	case len(steps) > maxRampSteps:
		d.P.At(path, "at most %d steps, not %d", maxRampSteps, len(steps))
	case steps[len(steps)-1] != 100:
		d.P.At(path, "the last step must be 100 (the ramp is done when every call goes to the broker), not %d", steps[len(steps)-1])
	default:
		return steps
	}
	return nil
}

// share decodes a share of calls written as a percentage, "0.5%", or as a
// fraction from 0 to 1; what says what it is a share of.
func (d *decoder) share(v *yamlfile.Value, path, what string) *float64 {
	if v == nil || v.Kind == yamlfile.Null {
		return nil
	}
	var f float64
	if x, isStr := v.V.(string); isStr && v.Kind == yamlfile.Scalar {
		num, ok := strings.CutSuffix(strings.TrimSpace(x), "%")
		p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if !ok || err != nil || math.IsNaN(p) {
			d.P.At(path, "invalid share %q: want a percentage such as 0.5%% (of %s)", x, what)
			return nil
		}
		if f = p / 100; f < 0 || f > 1 {
			d.P.At(path, "must be from 0%% to 100%%, not %s", v.Text)
			return nil
		}
		return &f
	}
	f, ok := d.number(v, path, "a percentage such as 0.5%")
	if !ok {
		return nil
	}
	if math.IsNaN(f) || f < 0 || f > 1 {
		d.P.At(path, "must be a fraction from 0 to 1, not %s (write %s%% for a percentage)", v.Text, v.Text)
		return nil
	}
	return &f
}

// factor decodes max_p99_vs_legacy: a positive ratio such as 1.5.
func (d *decoder) factor(v *yamlfile.Value, path string) float64 {
	f, ok := d.number(v, path, "a ratio such as 1.5 (the broker's p99 over legacy's)")
	if !ok {
		return 0
	}
	if math.IsNaN(f) || f <= 0 || f > 1000 {
		d.P.At(path, "must be above 0 and at most 1000, not %s (1.5: the broker's p99 may be 1.5 times legacy's)", v.Text)
		return 0
	}
	return f
}

// rampDefaults fills the zero fields of a route's ramp.
func rampDefaults(r *Route) {
	if r.Ramp == nil {
		return
	}
	setZero(&r.Ramp.Every, gateway.DefaultRampEvery)
	setZero(&r.Ramp.Gate.MinCalls, gateway.DefaultRampMinCalls)
	setZero(&r.Ramp.OnBreach, gateway.BreachRollback)
}

// validateRamp checks a route's ramp against the rest of the route.
func validateRamp(c *Config, r *Route, path string, p *yamlfile.Problems) {
	rp := yamlfile.Field(path, "ramp")
	if r.Ramp == nil {
		return
	}
	switch {
	case r.To != TargetBroker:
		p.Once(rp, "a ramp moves a broker route's calls from legacy to the broker; this route sends every call to legacy (set to: broker)")
	case c.Legacy.GRPC == "":
		p.Once(rp, "a ramp sends the calls its step leaves to legacy: set legacy.grpc")
	case r.Weight != nil:
		p.Once(yamlfile.Field(path, "weight"), "a ramp sets the weight step by step: leave weight out, or leave ramp out")
	case r.Desc != nil && streaming(r.Desc) != "":
		p.Once(rp, "a ramp is for unary methods; %s is %s", r.Method, streaming(r.Desc))
	}
	if len(r.Ramp.Steps) == 0 && !reportedUnder(p, yamlfile.Field(rp, "steps")) {
		p.Once(yamlfile.Field(rp, "steps"), "required: the percentages of calls sent to the broker, step by step, such as [1, 5, 25, 50, 100]")
	}
	if r.Ramp.Gate.MaxShadowMismatch != nil && !(r.Shadow && r.Compare) {
		p.Once(yamlfile.Field(yamlfile.Field(rp, "gate"), "max_shadow_mismatch"),
			"judges the comparison of shadow copies of the calls the step leaves to legacy: set shadow: true (or {percent: N}) and compare: true")
	}
	if r.Shadow && r.Pattern == PatternEvent {
		p.Once(yamlfile.Field(path, "pattern"), "a ramp's shadow copies are compared rpc calls: leave pattern out or set it to rpc")
	}
}

// reportedUnder reports whether a problem was reported at path or inside
// it.
func reportedUnder(p *yamlfile.Problems, path string) bool {
	for k := range p.Reported {
		if k == path || strings.HasPrefix(k, path+"[") || strings.HasPrefix(k, path+".") {
			return true
		}
	}
	return false
}

// RampStream is the stream that holds the ramps' state, or "" when no
// route ramps.
func (c *Config) RampStream() string {
	for i := range c.Routes {
		if c.Routes[i].Ramp != nil {
			return c.Server.RampStream
		}
	}
	return ""
}
