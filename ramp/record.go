package ramp

import (
	"context"
	"slices"
	"time"
)

// Log is the port through which ramps are shared between figways.
// adapters/amqp implements it on a RabbitMQ stream, which it reads back
// into the Controller ([Controller.Apply], [Controller.CaughtUp]).
type Log interface {
	// Append writes r to the log and returns once the log holds it. Every
	// Controller reading the log gets r through Apply, the appending one
	// included.
	Append(ctx context.Context, r *Record) error
}

// Kind is what a Record says.
type Kind string

const (
	// KindState sets a ramp's state: its step, paused or not, since when.
	KindState Kind = "state"
	// KindFigures is one figway's figures for a ramp's step.
	KindFigures Kind = "figures"
)

// The events of a ramp: what a state record did. They are the values of
// figway_ramp_events_total's event label.
const (
	EventStart       = "start"       // the ramp's first step
	EventStep        = "step"        // the gate held for every: the next step
	EventDone        = "done"        // the last step (100 %) reached
	EventBreach      = "breach"      // the gate broke: on_breach applied, paused
	EventPause       = "pause"       // paused by an operator
	EventResume      = "resume"      // resumed by an operator
	EventPromote     = "promote"     // the next step, by an operator
	EventRollback    = "rollback"    // the previous step, by an operator; paused
	EventReconfigure = "reconfigure" // the steps changed in the routes file
	// EventCheckpoint restates the state, unchanged, so that it outlives
	// the stream's retention; it is not counted.
	EventCheckpoint = "checkpoint"
)

// Record is one entry of the log.
type Record struct {
	Kind  Kind   `json:"kind"`
	Route string `json:"route"`
	// Epoch numbers the ramp's states: a state record moves the ramp from
	// Epoch-1 to Epoch; figures are for the step of Epoch.
	Epoch uint64    `json:"epoch"`
	At    time.Time `json:"at"`
	// By is the figway that appended the record.
	By string `json:"by"`

	// State records: the steps, the index of the current one (-1: none,
	// every call to legacy), since when the step's window runs, paused or
	// not and why, and the event that led here.
	Steps  []int     `json:"steps,omitempty"`
	Step   int       `json:"step"`
	Since  time.Time `json:"since,omitzero"`
	Paused bool      `json:"paused,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Event  string    `json:"event,omitempty"`

	// Figures records: the figway's figures since the step began.
	Figures *Figures `json:"figures,omitempty"`
}

// Event is one change of a ramp, as the status page and GET /v1/ramps
// show it.
type Event struct {
	At     time.Time `json:"at"`
	Event  string    `json:"event"`
	Step   int       `json:"step"`
	Weight int       `json:"weight"`
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by"`
}

// keptEvents is how many of a ramp's last events a Controller keeps.
const keptEvents = 10

// state is one ramp as the log says it is.
type state struct {
	known  bool // a state record has been read
	epoch  uint64
	steps  []int
	step   int
	since  time.Time
	paused bool
	reason string
	event  string
	by     string
	// written is when the last state record, checkpoints included, was
	// appended.
	written time.Time
	// figures holds each figway's latest figures for epoch.
	figures map[string]Figures
	events  []Event
	counts  map[string]uint64 // events applied, by name
}

func (s *state) weight() int { return weightAt(s.steps, s.step) }

func (s *state) done() bool { return s.known && s.step == len(s.steps)-1 }

func weightAt(steps []int, i int) int {
	if i < 0 || i >= len(steps) {
		return 0
	}
	return steps[i]
}

// apply folds r into s and reports whether r changed the ramp's state (a
// new epoch).
func (s *state) apply(r *Record) bool {
	switch r.Kind {
	case KindFigures:
		if s.known && r.Epoch == s.epoch && r.Figures != nil {
			if s.figures == nil {
				s.figures = map[string]Figures{}
			}
			s.figures[r.By] = *r.Figures
		}
		return false
	case KindState:
	default:
		return false
	}
	if s.known && r.Epoch == s.epoch && r.Event == EventCheckpoint {
		s.written = r.At
		return false
	}
	// The first record of the next epoch wins; a reader that starts past
	// the beginning of the log takes the first state it reads.
	if s.known && r.Epoch != s.epoch+1 {
		return false
	}
	s.known, s.epoch, s.steps, s.step = true, r.Epoch, slices.Clone(r.Steps), r.Step
	s.since, s.paused, s.reason, s.event, s.by, s.written = r.Since, r.Paused, r.Reason, r.Event, r.By, r.At
	s.figures = nil
	if r.Event == EventCheckpoint {
		return true
	}
	if s.counts == nil {
		s.counts = map[string]uint64{}
	}
	s.counts[r.Event]++
	s.events = append(s.events, Event{At: r.At, Event: r.Event, Step: r.Step, Weight: s.weight(), Reason: r.Reason, By: r.By})
	if len(s.events) > keptEvents {
		s.events = s.events[len(s.events)-keptEvents:]
	}
	return true
}

// next returns the state record that moves s to its next epoch; the
// caller sets what changes.
func (s *state) next(route, by string, now time.Time, event string) *Record {
	return &Record{Kind: KindState, Route: route, Epoch: s.epoch + 1, At: now, By: by,
		Steps: slices.Clone(s.steps), Step: s.step, Since: s.since, Paused: s.paused, Reason: s.reason, Event: event}
}
