package ramp

import (
	"fmt"
	"math"
	"time"

	"github.com/figway/figway/gateway"
)

// breach returns why f breaks gate g at a step of weight percent, or ""
// when it holds. The caller has checked that f has g.MinCalls calls.
func breach(g *gateway.Gate, f *Figures, weight int) string {
	at := fmt.Sprintf(" at %d %%", weight)
	if g.MaxErrorRate != nil && f.ErrorRate() > *g.MaxErrorRate {
		return fmt.Sprintf("error rate %s > %s%s (%d of %d broker-side calls failed)",
			pct(f.ErrorRate()), pct(*g.MaxErrorRate), at, f.Failures, f.Calls)
	}
	p99 := f.BrokerLatency.Quantile(0.99)
	if g.MaxP99 > 0 && p99 > g.MaxP99 {
		return fmt.Sprintf("p99 %s > %s%s", ms(p99), ms(g.MaxP99), at)
	}
	if g.MaxP99VsLegacy > 0 && f.Legacy > 0 {
		legacy := f.LegacyLatency.Quantile(0.99)
		if float64(p99) > g.MaxP99VsLegacy*float64(legacy) {
			return fmt.Sprintf("p99 %s > %g × legacy's %s%s", ms(p99), g.MaxP99VsLegacy, ms(legacy), at)
		}
	}
	if g.MaxShadowMismatch != nil && f.Compared > 0 && f.MismatchRate() > *g.MaxShadowMismatch {
		return fmt.Sprintf("shadow mismatch %s > %s%s (%d of %d compared copies differ)",
			pct(f.MismatchRate()), pct(*g.MaxShadowMismatch), at, f.Mismatched, f.Compared)
	}
	return ""
}

// pct renders a share as a percentage: 0.005 as "0.5 %".
func pct(f float64) string {
	p := f * 100
	if p == math.Trunc(p) {
		return fmt.Sprintf("%.0f %%", p)
	}
	return fmt.Sprintf("%.3g %%", p)
}

// ms renders a latency in milliseconds: "412 ms", "0.8 ms".
func ms(d time.Duration) string {
	m := float64(d) / float64(time.Millisecond)
	if m >= 10 {
		return fmt.Sprintf("%.0f ms", m)
	}
	return fmt.Sprintf("%.2g ms", m)
}
