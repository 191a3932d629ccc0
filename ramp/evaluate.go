package ramp

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/figway/figway/gateway"
)

// Timing of a Controller.
const (
	// tick is how often Run judges the gates.
	tick = 250 * time.Millisecond
	// appendTimeout bounds one append to the log.
	appendTimeout = 5 * time.Second
	// Retention is how long the log keeps records, and how far back a
	// starting figway reads it: a ramp's state is appended again
	// (checkpoint) when its last state record is older than a quarter of
	// it.
	Retention = 24 * time.Hour
)

// figuresEvery is how often a figway appends its figures for a step of a
// ramp whose steps last every: about eight times a step, at most four
// times a second, at least every 5s.
func figuresEvery(every time.Duration) time.Duration {
	return min(max(every/8, tick), 5*time.Second)
}

// Run judges the gates of the ramps and appends this figway's figures
// until ctx is cancelled.
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		c.Tick(ctx)
	}
}

// Tick judges each ramped route's gate once, appends the change it
// decides, and appends this figway's figures when they are due. Run calls
// it; tests call it with their own clock.
func (c *Controller) Tick(ctx context.Context) {
	now := c.cfg.Now()
	for _, r := range c.cfg.Table().Routes() {
		if r.Ramp == nil {
			continue
		}
		if rec := c.decide(r, now); rec != nil {
			c.appendChange(ctx, rec)
		}
		if rec := c.figures(r, now); rec != nil {
			c.append(ctx, rec)
		}
	}
}

// decide returns the state record that r's ramp needs now, or nil.
func (c *Controller) decide(r *gateway.Route, now time.Time) *Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, rp := r.Method, r.Ramp
	cf, ok := c.seen[m]
	if !ok || !slices.Equal(cf.steps, rp.Steps) {
		cf = configured{steps: slices.Clone(rp.Steps), at: now}
		c.seen[m] = cf
	}
	if !c.caught {
		return nil
	}
	s := c.states[m]
	if s == nil || !s.known {
		return c.change(&Record{Kind: KindState, Route: m, Epoch: 1, At: now, By: c.cfg.Replica,
			Steps: slices.Clone(rp.Steps), Step: 0, Since: now, Event: EventStart}, 0)
	}
	if !slices.Equal(s.steps, rp.Steps) {
		if !cf.at.After(s.written) {
			return nil // another figway's newer routes file set these steps: follow
		}
		rec := s.next(m, c.cfg.Replica, now, EventReconfigure)
		rec.Steps, rec.Step, rec.Since = slices.Clone(rp.Steps), stepAtMost(rp.Steps, s.weight()), now
		rec.Reason = fmt.Sprintf("steps changed from %v to %v", s.steps, rp.Steps)
		return c.change(rec, s.epoch)
	}
	if now.Sub(s.written) > Retention/4 {
		rec := s.next(m, c.cfg.Replica, now, EventCheckpoint)
		rec.Epoch = s.epoch
		return rec
	}
	if s.paused || s.done() {
		return nil
	}
	f := c.sum(m, s, now)
	if f.Calls+f.Running < uint64(rp.Gate.MinCalls) {
		return nil
	}
	if why := breach(&rp.Gate, &f, s.weight()); why != "" {
		rec := s.next(m, c.cfg.Replica, now, EventBreach)
		rec.Step, rec.Paused, rec.Reason, rec.Since = breachStep(rp.OnBreach, s.step), true, why, now
		return c.change(rec, s.epoch)
	}
	if now.Sub(s.since) < rp.Every {
		return nil
	}
	rec := s.next(m, c.cfg.Replica, now, EventStep)
	rec.Step, rec.Since, rec.Reason = s.step+1, now, ""
	if rec.Step == len(s.steps)-1 {
		rec.Event = EventDone
	}
	return c.change(rec, s.epoch)
}

// change returns rec unless this figway has appended a change from epoch
// already (one change per epoch from each figway), and notes it.
func (c *Controller) change(rec *Record, epoch uint64) *Record {
	if sent, ok := c.sent[rec.Route]; ok && sent == epoch {
		return nil
	}
	c.sent[rec.Route] = epoch
	return rec
}

// appendChange appends a state record; when it fails, the change may be
// tried again at the next tick.
func (c *Controller) appendChange(ctx context.Context, rec *Record) {
	if err := c.append(ctx, rec); err != nil && rec.Event != EventCheckpoint {
		c.mu.Lock()
		if c.sent[rec.Route] == rec.Epoch-1 {
			delete(c.sent, rec.Route)
		}
		c.mu.Unlock()
	}
}

func (c *Controller) append(ctx context.Context, rec *Record) error {
	ctx, cancel := context.WithTimeout(ctx, appendTimeout)
	defer cancel()
	err := c.cfg.Log.Append(ctx, rec)
	if err != nil && ctx.Err() == nil {
		c.log.Warn("ramp record not appended", "route", rec.Route, "kind", string(rec.Kind), "event", rec.Event, "err", err)
	}
	return err
}

// figures returns this figway's figures record for r's current step when
// one is due: they changed, the step is being judged, and the last one is
// figuresEvery old.
func (c *Controller) figures(r *gateway.Route, now time.Time) *Record {
	c.mu.Lock()
	s := c.states[r.Method]
	active := s != nil && s.known && !s.paused && !s.done()
	var epoch uint64
	if active {
		epoch = s.epoch
	}
	c.mu.Unlock()
	v, ok := c.windows.Load(r.Method)
	if !active || !ok {
		return nil
	}
	w := v.(*window)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.epoch != epoch || !w.dirty && len(w.running) == 0 || now.Sub(w.appended) < figuresEvery(r.Ramp.Every) {
		return nil
	}
	f := w.snapshot(now)
	w.dirty, w.appended = false, now
	return &Record{Kind: KindFigures, Route: r.Method, Epoch: epoch, At: now, By: c.cfg.Replica, Figures: &f}
}

// sum returns the figures of s's step: every other figway's latest from
// the log, and this figway's own as they are at now, its running calls
// included. c.mu is held.
func (c *Controller) sum(method string, s *state, now time.Time) Figures {
	var f Figures
	for by, o := range s.figures {
		if by != c.cfg.Replica {
			f.add(o)
		}
	}
	if v, ok := c.windows.Load(method); ok {
		w := v.(*window)
		w.mu.Lock()
		if w.epoch == s.epoch {
			f.add(w.snapshot(now))
		}
		w.mu.Unlock()
	}
	return f
}

// breachStep is the step a breach at step leaves the ramp at.
func breachStep(on gateway.Breach, step int) int {
	switch on {
	case gateway.BreachHold:
		return step
	case gateway.BreachZero:
		return -1
	}
	return max(step-1, -1)
}

// stepAtMost returns the index of the largest of steps not above weight,
// or -1.
func stepAtMost(steps []int, weight int) int {
	i := -1
	for j, s := range steps {
		if s <= weight {
			i = j
		}
	}
	return i
}
