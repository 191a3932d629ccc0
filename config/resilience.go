package config

import (
	"fmt"
	"math"
)

// ratio returns a fraction in (0, 1]: breaker.failure_ratio.
func (d *decoder) ratio(v *value, path string) float64 {
	if v == nil || v.kind == null {
		return 0
	}
	var f float64
	switch x := v.v.(type) {
	case int64:
		f = float64(x)
	case float64:
		f = x
	default:
		d.wrongType(v, path, "a fraction such as 0.5")
		return 0
	}
	if v.kind != scalar {
		d.wrongType(v, path, "a fraction such as 0.5")
		return 0
	}
	if math.IsNaN(f) || f <= 0 || f > 1 {
		d.p.add(path, v.line, fmt.Errorf("must be above 0 and at most 1, not %s (0.5 opens the breaker when half the calls fail)", v.text))
		return 0
	}
	return f
}

// validateResilience checks the breaker and retry settings that involve
// more than one key, as written: it runs before defaults, so that each
// problem is reported once, where it was written.
func validateResilience(c *Config, p *problems, broken map[string]bool) {
	dflt := c.Defaults.Breaker.FailureRatio
	checkWindow(&c.Defaults.Breaker, 0, field("defaults", "breaker"), p)
	for i := range c.Routes {
		r, path := &c.Routes[i], index("routes", i)
		if broken[path] {
			continue
		}
		checkWindow(&r.Breaker, dflt, field(path, "breaker"), p)
		if r.Retry == "" || p.reported[field(path, "retry")] {
			continue
		}
		switch {
		case r.To == TargetLegacy:
			p.once(field(path, "retry"), "only for broker routes: a legacy route is not published")
		case r.Pattern == PatternEvent:
			p.once(field(path, "retry"), "only for rpc routes: an event whose confirm was lost is published again anyway, with the same id")
		}
	}
}

// checkWindow reports window and min_requests written without a
// failure_ratio in the same breaker or inherited from defaults.breaker.
func checkWindow(b *Breaker, inherited float64, path string, p *problems) {
	if b.FailureRatio > 0 || inherited > 0 {
		return
	}
	if b.Window > 0 {
		p.once(field(path, "window"), "needs failure_ratio: the window is the period the failure ratio is measured over")
	}
	if b.MinRequests > 0 {
		p.once(field(path, "min_requests"), "needs failure_ratio: the least number of calls before the failure ratio counts")
	}
}
