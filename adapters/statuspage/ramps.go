package statuspage

import (
	"fmt"
	"time"

	"github.com/figway/figway/gateway"
)

// Ramp is one route's ramp as the page shows it (docs/migration.md,
// "Ramps"): its step, the time to the next, each gate figure against its
// limit, and its last events.
type Ramp struct {
	Method string
	Steps  []int
	Step   int // index in Steps; -1: every call to legacy
	Weight int
	State  string // ramping, paused, done, not started
	Reason string
	// NextStep is the time left before the step has held for every; -1
	// when paused or done.
	NextStep time.Duration
	Gate     []GateFigure
	Events   []RampEvent // newest first
}

// GateFigure is one figure of a ramp's gate against its limit.
type GateFigure struct {
	Name   string // "calls", "error rate", "p99", "p99 vs legacy", "shadow mismatch"
	Value  string
	Limit  string
	Breaks bool // the figure is past its limit
}

// RampEvent is one change of a ramp.
type RampEvent struct {
	At     time.Time
	Event  string
	Weight int
	Reason string
}

// ramps returns the ramps for the view.
func (p *Page) ramps() []Ramp {
	if p.o.Ramps == nil {
		return nil
	}
	return p.o.Ramps()
}

// rampWeight returns the weight rt's ramp serves now.
func (p *Page) rampWeight(rt *gateway.Route) int {
	for _, r := range p.ramps() {
		if r.Method == rt.Method {
			return r.Weight
		}
	}
	return rt.Ramp.Steps[0]
}

// StepLabel is the ramp's step as "3/5 · 25 %".
func (r Ramp) StepLabel() string {
	return fmt.Sprintf("%d/%d · %d %%", r.Step+1, len(r.Steps), r.Weight)
}

// Next is the time to the next step as the page shows it.
func (r Ramp) Next() string {
	if r.NextStep < 0 {
		return "–"
	}
	return r.NextStep.Round(100 * time.Millisecond).String()
}
