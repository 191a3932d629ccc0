// Package calls runs callers against the system under test — each a loop
// bounded in calls and by a context — and keeps every call's outcome, for
// the tests that look at what a fault, a reload or a signal did to the
// calls in flight.
package calls

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Outcome is one call as its caller saw it.
type Outcome struct {
	Caller, Seq int
	Start, End  time.Time
	Err         error
}

// Took is how long the call took.
func (o Outcome) Took() time.Duration { return o.End.Sub(o.Start) }

// ErrDone, returned by a call, ends its caller: the call is not counted.
var ErrDone = errors.New("done")

// Load is callers running; Wait waits for them.
type Load struct {
	mu       sync.Mutex
	outcomes []Outcome
	wg       sync.WaitGroup
}

// Start starts n callers, each making up to max calls, one after the
// other, until ctx ends or a call returns ErrDone; a call in flight when
// ctx ends runs to its end (its context is ctx without the cancellation:
// the call bounds itself). Caller i's call number j is call(ctx, i, j).
func Start(ctx context.Context, n, max int, call func(ctx context.Context, caller, seq int) error) *Load {
	l := &Load{}
	for i := range n {
		l.wg.Go(func() {
			for j := 0; j < max && ctx.Err() == nil; j++ {
				start := time.Now()
				err := call(context.WithoutCancel(ctx), i, j)
				if errors.Is(err, ErrDone) {
					return
				}
				l.add(Outcome{Caller: i, Seq: j, Start: start, End: time.Now(), Err: err})
			}
		})
	}
	return l
}

// Wait waits for the callers and returns their outcomes sorted by End.
func (l *Load) Wait() []Outcome {
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.SortFunc(l.outcomes, func(a, b Outcome) int { return a.End.Compare(b.End) })
	return slices.Clone(l.outcomes)
}

// Steady starts a call every period, each in a goroutine of its own,
// until ctx ends or max calls have started; Wait returns their outcomes
// (Caller 0, Seq the call's number).
func Steady(ctx context.Context, period time.Duration, max int, call func(ctx context.Context, seq int) error) *Load {
	l := &Load{}
	l.wg.Go(func() {
		tick := time.NewTicker(period)
		defer tick.Stop()
		for seq := 0; seq < max; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l.wg.Go(func() {
				start := time.Now()
				err := call(context.WithoutCancel(ctx), seq)
				l.add(Outcome{Seq: seq, Start: start, End: time.Now(), Err: err})
			})
		}
	})
	return l
}

// ServedSince reports whether a call that started after since has
// succeeded.
func (l *Load) ServedSince(since time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range l.outcomes {
		if o.Err == nil && o.Start.After(since) {
			return true
		}
	}
	return false
}

func (l *Load) add(o Outcome) {
	l.mu.Lock()
	l.outcomes = append(l.outcomes, o)
	l.mu.Unlock()
}
