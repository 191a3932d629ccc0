package config

import (
	"fmt"
	"math"

	"github.com/figway/figway/config/yamlfile"
	"github.com/figway/figway/gateway"
)

// Breaker configures a route's circuit breaker (YAML breaker, in defaults
// and in each route), in the gateway's own type. Each field left 0 in a
// route takes the value of defaults.breaker; each left 0 there has the
// default of resilience.BreakerSettings. The YAML keys: failures,
// open_for, half_open_requests, failure_ratio (0 < ratio ≤ 1; without it
// only consecutive failures open the breaker), window and min_requests
// (both need a failure_ratio).
type Breaker = gateway.Breaker

func (d *decoder) breaker(v *yamlfile.Value, path string) Breaker {
	f := d.Fields(v, path, "failures", "open_for", "half_open_requests", "failure_ratio", "window", "min_requests")
	return Breaker{
		Failures:         d.Positive(f["failures"], yamlfile.Field(path, "failures"), 1_000_000, ""),
		OpenFor:          d.Duration(f["open_for"], yamlfile.Field(path, "open_for")),
		HalfOpenRequests: d.Positive(f["half_open_requests"], yamlfile.Field(path, "half_open_requests"), 1_000_000, ""),
		FailureRatio:     d.ratio(f["failure_ratio"], yamlfile.Field(path, "failure_ratio")),
		Window:           d.Duration(f["window"], yamlfile.Field(path, "window")),
		MinRequests:      d.Positive(f["min_requests"], yamlfile.Field(path, "min_requests"), 1_000_000, ""),
	}
}

// ratio returns a fraction in (0, 1]: breaker.failure_ratio.
func (d *decoder) ratio(v *yamlfile.Value, path string) float64 {
	f, ok := d.number(v, path, "a fraction such as 0.5")
	if !ok {
		return 0
	}
	if math.IsNaN(f) || f <= 0 || f > 1 {
		d.P.Add(path, v.Line, fmt.Errorf("must be above 0 and at most 1, not %s (0.5 opens the breaker when half the calls fail)", v.Text))
		return 0
	}
	return f
}

// number returns a number written as an integer or a decimal; want says
// what is wanted when it is something else. A null v is absent: false,
// nothing reported.
func (d *decoder) number(v *yamlfile.Value, path, want string) (float64, bool) {
	if v == nil || v.Kind == yamlfile.Null {
		return 0, false
	}
	var f float64
	switch x := v.V.(type) {
	case int64:
		f = float64(x)
	case float64:
		f = x
	default:
		d.WrongType(v, path, want)
		return 0, false
	}
	if v.Kind != yamlfile.Scalar {
		d.WrongType(v, path, want)
		return 0, false
	}
	return f, true
}

// checkWindow reports window and min_requests written without a
// failure_ratio in the same breaker or inherited from defaults.breaker.
func checkWindow(b *Breaker, inherited float64, path string, p *yamlfile.Problems) {
	if b.FailureRatio > 0 || inherited > 0 {
		return
	}
	if b.Window > 0 {
		p.Once(yamlfile.Field(path, "window"), "needs failure_ratio: the window is the period the failure ratio is measured over")
	}
	if b.MinRequests > 0 {
		p.Once(yamlfile.Field(path, "min_requests"), "needs failure_ratio: the least number of calls before the failure ratio counts")
	}
}

// windowDefaults gives a breaker with a failure ratio its window and
// minimum number of requests; without a ratio they stay 0.
func windowDefaults(b *Breaker) {
	if b.FailureRatio > 0 {
		setZero(&b.Window, defaultWindow)
		setZero(&b.MinRequests, defaultMinRequests)
	}
}
