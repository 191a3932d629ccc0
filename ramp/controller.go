package ramp

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/figway/figway/gateway"
)

var _ gateway.Ramps = (*Controller)(nil)

// Errors of a Controller's actions; callers branch on them with errors.Is.
var (
	// ErrNotFound: no route of that method has a ramp here.
	ErrNotFound = errors.New("no ramp for this method")
	// ErrNotReady: the log has not been read up to now yet, or the ramp
	// has not started.
	ErrNotReady = errors.New("ramps not read from the log yet")
	// ErrConflict: the action cannot apply to the ramp as it is (promote a
	// ramp that is done, resume one that is not paused), or other figways
	// kept changing it.
	ErrConflict = errors.New("the ramp is not in a state for this action")
	// ErrUnknownAction: not pause, resume, promote or rollback.
	ErrUnknownAction = errors.New("unknown action")
)

// Config configures a Controller.
type Config struct {
	// Log is where records are appended. It is required.
	Log Log
	// Table returns the route table serving now: its routes with a Ramp
	// are the ramps. It is required.
	Table func() *gateway.Table
	// Replica names this figway in the log's records; every figway needs
	// its own.
	Replica string
	Logger  *slog.Logger // if nil, slog.Default()
	// Now is the clock; if nil, time.Now.
	Now func() time.Time
}

// Controller runs the ramps of one figway: it gives the gateway their
// weights ([Controller.Weight]), counts their calls
// ([Controller.Observe]), appends its figures and the steps its gates
// decide to the log, and folds what the log says into the ramps' state
// ([Controller.Apply]). Its methods are safe for concurrent use; Run
// evaluates the gates until its context ends.
type Controller struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	states map[string]*state // by method, as the log says
	caught bool
	// seen holds each ramped route's steps as the routes file said them
	// last, and since when (a reload that changes them reconfigures).
	seen map[string]configured
	// sent holds, by method, the epoch this figway last appended a
	// change from: it appends one change per epoch.
	sent map[string]uint64
	// changed is closed and replaced whenever a state record applies.
	changed chan struct{}

	windows sync.Map // method → *window
	weights sync.Map // method → *atomic.Int32, the weight the log says
}

type configured struct {
	steps []int
	at    time.Time
}

// window is this figway's figures for the step of epoch.
type window struct {
	mu       sync.Mutex
	epoch    uint64
	f        Figures
	dirty    bool      // changed since last appended
	appended time.Time // when last appended
	// running holds the start of each broker-side call that has begun
	// and not ended, by the id Begin gave it; a new step keeps them.
	running map[uint64]time.Time
	lastID  uint64
}

// snapshot returns the window's figures at now: its ended calls, and each
// running call as a call of its age so far, which its latency will be at
// least. w.mu is held.
func (w *window) snapshot(now time.Time) Figures {
	f := w.f.clone()
	for _, start := range w.running {
		f.Running++
		f.BrokerLatency = f.BrokerLatency.observe(now.Sub(start))
	}
	return f
}

// New returns a Controller. It starts nothing: Run does.
func New(cfg Config) *Controller {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Controller{cfg: cfg, log: cfg.Logger, states: map[string]*state{}, seen: map[string]configured{},
		sent: map[string]uint64{}, changed: make(chan struct{})}
}

// Weight returns the percentage of method's calls the gateway sends to the
// broker: the step the log says, or — before the log has been read, or
// for a ramp that has not started — the ramp's first step.
func (c *Controller) Weight(method string) int {
	if w, ok := c.weights.Load(method); ok {
		return int(w.(*atomic.Int32).Load())
	}
	if r := c.cfg.Table().Lookup(method); r != nil && r.Ramp != nil {
		return r.Ramp.Steps[0]
	}
	return 0
}

// Begin notes the start of a broker-side call of method's ramped route,
// which the gate judges at its age until Observe takes its end.
func (c *Controller) Begin(method string) uint64 {
	w := c.window(method)
	now := c.cfg.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running == nil {
		w.running = map[uint64]time.Time{}
	}
	w.lastID++
	w.running[w.lastID] = now
	return w.lastID
}

// Observe counts one call of method's ramped route in this figway's
// figures for the current step.
func (c *Controller) Observe(method string, o gateway.Observation) {
	w := c.window(method)
	w.mu.Lock()
	defer w.mu.Unlock()
	if o.Begun != 0 {
		delete(w.running, o.Begun)
	}
	if o.Ignored {
		return
	}
	switch {
	case o.Compared:
		w.f.Compared++
		if o.Mismatched {
			w.f.Mismatched++
		}
	case o.Side == gateway.TargetBroker:
		w.f.Calls++
		if o.Failed {
			w.f.Failures++
		}
		w.f.BrokerLatency = w.f.BrokerLatency.observe(o.Latency)
	case o.Side == gateway.TargetLegacy:
		w.f.Legacy++
		w.f.LegacyLatency = w.f.LegacyLatency.observe(o.Latency)
	}
	w.dirty = true
}

// window returns method's window, made if there is none.
func (c *Controller) window(method string) *window {
	v, ok := c.windows.Load(method)
	if !ok {
		v, _ = c.windows.LoadOrStore(method, new(window))
	}
	return v.(*window)
}

// Apply folds one record of the log into the ramps' state. The log's
// reader calls it for every record, in the log's order.
func (c *Controller) Apply(r *Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.states[r.Route]
	if s == nil {
		s = &state{}
		c.states[r.Route] = s
	}
	if !s.apply(r) {
		return
	}
	w, _ := c.weights.LoadOrStore(r.Route, new(atomic.Int32))
	w.(*atomic.Int32).Store(int32(s.weight()))
	if v, ok := c.windows.Load(r.Route); ok { // a new step: a new window
		win := v.(*window)
		win.mu.Lock()
		if win.epoch != s.epoch {
			win.epoch, win.f, win.dirty = s.epoch, Figures{}, false
		}
		win.mu.Unlock()
	} else {
		c.windows.LoadOrStore(r.Route, &window{epoch: s.epoch})
	}
	if r.Event != EventCheckpoint {
		level := slog.LevelInfo
		if r.Event == EventBreach {
			level = slog.LevelWarn
		}
		c.log.Log(context.Background(), level, "ramp "+r.Event, "route", r.Route, "weight", s.weight(),
			"step", r.Step, "paused", r.Paused, "reason", r.Reason, "by", r.By)
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// CaughtUp records that the log has been read up to the time this figway
// connected to it: from now on the state is the log's.
func (c *Controller) CaughtUp() {
	c.mu.Lock()
	c.caught = true
	c.mu.Unlock()
}

// Ready reports whether the log has been read up to the start, so that the
// weights are those every figway uses.
func (c *Controller) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.caught
}
