package gateway

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// What the admin status page shows of the gateway beside the counters:
// where a route sends its calls, when its breaker last changed state, and
// the fields of the last shadow mismatches (docs/operations.md).

// GoesTo says where the route sends its calls, in the words of
// `figway routes` and the status page: "broker", "legacy", a canary split,
// a shadowed legacy route (with its sample), with its fallback and pin.
func (r *Route) GoesTo() string {
	if !r.Publishes() {
		return "legacy"
	}
	var s string
	switch {
	case r.Ramp != nil:
		s = fmt.Sprintf("ramp %v%%", r.Ramp.Steps)
		if r.StickyBy != "" {
			s += " by " + r.StickyBy
		}
		if r.Shadow {
			s += ", legacy side shadowed"
		}
	case r.Shadow && r.Compare:
		s = "legacy+shadow(compare)"
	case r.Shadow:
		s = "legacy+shadow"
	case r.Weight != nil:
		s = fmt.Sprintf("split %d%% broker/%d%% legacy", *r.Weight, 100-*r.Weight)
		if r.StickyBy != "" {
			s += " by " + r.StickyBy
		}
	default:
		s = "broker"
	}
	if r.Shadow && r.ShadowPercent < 100 {
		s += fmt.Sprintf(" %d%%", r.ShadowPercent)
		if r.StickyBy != "" {
			s += " by " + r.StickyBy
		}
	}
	if r.FallsBack() {
		s += ", fallback legacy"
	}
	if r.Pins() {
		s += ", pin by " + r.PinBy
	}
	return s
}

// BreakerChanged returns when the breaker of method's route last changed
// state, or the zero time if it never has since figway started.
func (t *Table) BreakerChanged(method string) time.Time {
	if t == nil || t.breakers == nil {
		return time.Time{}
	}
	v, ok := t.breakers.at.Load(method)
	if !ok {
		return time.Time{}
	}
	return v.(time.Time)
}

// recentMismatches keeps the field paths of a route's last few shadow
// mismatches, newest first.
type recentMismatches struct {
	mu    sync.Mutex
	paths [][]string
}

const keepMismatches = 5

func (m *recentMismatches) add(paths []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paths = append([][]string{slices.Clone(paths)}, m.paths...)
	if len(m.paths) > keepMismatches {
		m.paths = m.paths[:keepMismatches]
	}
}

func (m *recentMismatches) get() [][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.paths)
}
