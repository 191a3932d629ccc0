package ramp

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// The operators' actions (docs/migration.md, "Operators stay in charge").
const (
	ActionPause    = "pause"
	ActionResume   = "resume"
	ActionPromote  = "promote"
	ActionRollback = "rollback"
)

// actionTries bounds how often an action is tried again when another
// figway's change took its epoch first.
const actionTries = 3

// Act applies an operator's action to method's ramp — pause, resume (its
// step's window starts again), promote (the next step now) or rollback
// (the previous step, paused) — and returns the ramp's state once this
// figway has read the change back from the log. reason, if not empty, is
// recorded with it.
func (c *Controller) Act(ctx context.Context, method, action, reason string) (Status, error) {
	if err := c.start(ctx, method); err != nil {
		return Status{}, err
	}
	for range actionTries {
		rec, err := c.action(method, action, reason)
		if err != nil {
			return Status{}, err
		}
		if err := c.append(ctx, rec); err != nil {
			return Status{}, fmt.Errorf("%s %s: %w", action, method, err)
		}
		won, err := c.await(ctx, rec)
		if err != nil {
			return Status{}, err
		}
		if won {
			st, _ := c.Status(method)
			return st, nil
		}
	}
	return Status{}, fmt.Errorf("%s %s: %w: other figways kept changing it", action, method, ErrConflict)
}

// start starts method's ramp if no figway has yet: an action may come
// before the first judgement.
func (c *Controller) start(ctx context.Context, method string) error {
	r := c.cfg.Table().Lookup(method)
	if r == nil || r.Ramp == nil {
		return fmt.Errorf("%s: %w", method, ErrNotFound)
	}
	c.mu.Lock()
	s := c.states[r.Method]
	if !c.caught {
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ErrNotReady)
	}
	if s != nil && s.known {
		c.mu.Unlock()
		return nil
	}
	now := c.cfg.Now()
	rec := &Record{Kind: KindState, Route: r.Method, Epoch: 1, At: now, By: c.cfg.Replica,
		Steps: slices.Clone(r.Ramp.Steps), Step: 0, Since: now, Event: EventStart}
	c.mu.Unlock()
	if err := c.append(ctx, rec); err != nil {
		return fmt.Errorf("start %s: %w", method, err)
	}
	_, err := c.await(ctx, rec) // whoever's start it was
	return err
}

// action returns the record of action on method's ramp as it is.
func (c *Controller) action(method, action, reason string) (*Record, error) {
	r := c.cfg.Table().Lookup(method)
	if r == nil || r.Ramp == nil {
		return nil, fmt.Errorf("%s: %w", method, ErrNotFound)
	}
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.states[r.Method]
	if !c.caught || s == nil || !s.known {
		return nil, fmt.Errorf("%s: %w", method, ErrNotReady)
	}
	rec := s.next(r.Method, c.cfg.Replica, now, action)
	switch action {
	case ActionPause:
		if s.paused {
			return nil, fmt.Errorf("%s is paused already: %w", method, ErrConflict)
		}
		rec.Paused, rec.Reason = true, or(reason, "paused by an operator")
	case ActionResume:
		if !s.paused {
			return nil, fmt.Errorf("%s is not paused: %w", method, ErrConflict)
		}
		rec.Paused, rec.Since, rec.Reason = false, now, or(reason, "resumed by an operator")
	case ActionPromote:
		if s.done() {
			return nil, fmt.Errorf("%s is at its last step: %w", method, ErrConflict)
		}
		rec.Step, rec.Since, rec.Reason = s.step+1, now, or(reason, "promoted by an operator")
	case ActionRollback:
		if s.step < 0 {
			return nil, fmt.Errorf("%s sends every call to legacy already: %w", method, ErrConflict)
		}
		rec.Step, rec.Since, rec.Paused, rec.Reason = s.step-1, now, true, or(reason, "rolled back by an operator")
	default:
		return nil, fmt.Errorf("%w %q; want pause, resume, promote or rollback", ErrUnknownAction, action)
	}
	return rec, nil
}

// await waits until the log has moved rec's ramp to rec's epoch, and
// reports whether rec is what did.
func (c *Controller) await(ctx context.Context, rec *Record) (bool, error) {
	for {
		c.mu.Lock()
		s := c.states[rec.Route]
		if s != nil && s.known && s.epoch >= rec.Epoch {
			won := s.epoch == rec.Epoch && s.by == rec.By && s.event == rec.Event && s.since.Equal(rec.Since)
			c.mu.Unlock()
			return won, nil
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return false, fmt.Errorf("%s %s: not read back from the log: %w", rec.Event, rec.Route, ctx.Err())
		}
	}
}

func or(s, dflt string) string {
	if s != "" {
		return s
	}
	return dflt
}

// Status is one ramp as GET /v1/ramps shows it.
type Status struct {
	Method string `json:"method"`
	Steps  []int  `json:"steps"`
	// Started is false until the ramp's first state is on the log.
	Started bool `json:"started"`
	// Step is the index of the current step in Steps, -1 when every call
	// goes to legacy; Weight is its percentage of calls to the broker.
	Step   int  `json:"step"`
	Weight int  `json:"weight"`
	Paused bool `json:"paused"`
	// Reason is why the ramp paused, or the last change's reason.
	Reason string    `json:"reason,omitempty"`
	Done   bool      `json:"done"`
	Since  time.Time `json:"since,omitzero"`
	// NextStepIn is how long until the step has held for every, in
	// seconds; absent when paused or done. The step is taken then if the
	// gate holds with min_calls.
	NextStepIn *float64 `json:"next_step_in_seconds,omitempty"`
	Epoch      uint64   `json:"epoch"`
	Gate       Gate     `json:"gate"`
	// Events are the last changes, oldest first; Counts counts every
	// change read since this figway started, by event.
	Events []Event           `json:"events"`
	Counts map[string]uint64 `json:"event_counts"`
}

// Gate is a step's gate figures, summed over every figway, against its
// limits; shares are fractions (0.005 is 0.5 %), latencies milliseconds.
// A limit that is absent is not judged.
type Gate struct {
	Calls    uint64 `json:"calls"`
	MinCalls int    `json:"min_calls"`
	Failures uint64 `json:"failures"`
	// Running counts broker-side calls not ended yet; P99Ms counts each
	// at its age so far.
	Running uint64 `json:"running"`
	// Figways counts the figways whose figures are in.
	Figways           int      `json:"figways"`
	ErrorRate         float64  `json:"error_rate"`
	MaxErrorRate      *float64 `json:"max_error_rate,omitempty"`
	P99Ms             float64  `json:"p99_ms"`
	MaxP99Ms          float64  `json:"max_p99_ms,omitempty"`
	LegacyCalls       uint64   `json:"legacy_calls"`
	LegacyP99Ms       float64  `json:"legacy_p99_ms"`
	MaxP99VsLegacy    float64  `json:"max_p99_vs_legacy,omitempty"`
	Compared          uint64   `json:"compared"`
	Mismatched        uint64   `json:"mismatched"`
	ShadowMismatch    float64  `json:"shadow_mismatch"`
	MaxShadowMismatch *float64 `json:"max_shadow_mismatch,omitempty"`
}

// Statuses returns every ramp of the routes serving now, in the routes
// file's order.
func (c *Controller) Statuses() []Status {
	out := []Status{}
	for _, r := range c.cfg.Table().Routes() {
		if r.Ramp != nil {
			st, _ := c.Status(r.Method)
			out = append(out, st)
		}
	}
	return out
}

// Status returns method's ramp, and false when its route has none.
func (c *Controller) Status(method string) (Status, bool) {
	r := c.cfg.Table().Lookup(method)
	if r == nil || r.Ramp == nil {
		return Status{}, false
	}
	rp := r.Ramp
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{Method: r.Method, Steps: slices.Clone(rp.Steps), Weight: rp.Steps[0], Events: []Event{}, Counts: map[string]uint64{}}
	st.Gate = Gate{MinCalls: rp.Gate.MinCalls, MaxErrorRate: rp.Gate.MaxErrorRate, MaxP99Ms: msOf(rp.Gate.MaxP99),
		MaxP99VsLegacy: rp.Gate.MaxP99VsLegacy, MaxShadowMismatch: rp.Gate.MaxShadowMismatch}
	s := c.states[r.Method]
	if s == nil || !s.known {
		return st, true
	}
	st.Started, st.Steps, st.Step, st.Weight = true, slices.Clone(s.steps), s.step, s.weight()
	st.Paused, st.Reason, st.Done, st.Since, st.Epoch = s.paused, s.reason, s.done(), s.since, s.epoch
	st.Events = slices.Clone(s.events)
	for k, v := range s.counts {
		st.Counts[k] = v
	}
	if !s.paused && !s.done() {
		left := max(rp.Every-now.Sub(s.since), 0).Seconds()
		st.NextStepIn = &left
	}
	f := c.sum(r.Method, s, now)
	st.Gate.Figways = len(s.figures)
	if _, ok := s.figures[c.cfg.Replica]; !ok && f.Calls+f.Legacy+f.Compared > 0 {
		st.Gate.Figways++
	}
	st.Gate.Calls, st.Gate.Failures, st.Gate.ErrorRate, st.Gate.Running = f.Calls, f.Failures, f.ErrorRate(), f.Running
	st.Gate.P99Ms, st.Gate.LegacyCalls, st.Gate.LegacyP99Ms = msOf(f.BrokerLatency.Quantile(0.99)), f.Legacy, msOf(f.LegacyLatency.Quantile(0.99))
	st.Gate.Compared, st.Gate.Mismatched, st.Gate.ShadowMismatch = f.Compared, f.Mismatched, f.MismatchRate()
	return st, true
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Events returns how many changes of each kind method's ramp has had, as
// this figway read them: figway_ramp_events_total.
func (c *Controller) Events(method string) map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]uint64{}
	if s := c.states[method]; s != nil {
		for k, v := range s.counts {
			out[k] = v
		}
	}
	return out
}
