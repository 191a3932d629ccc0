package resilience

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Defaults of [BreakerSettings], exported for the packages that document
// or apply them (config).
const (
	DefaultFailures         = 5
	DefaultOpenFor          = 10 * time.Second
	DefaultHalfOpenRequests = 1
	DefaultWindow           = time.Minute
	DefaultMinRequests      = 10
	DefaultRefusalGrace     = 10 * time.Second
)

// BreakerSettings configures a [Breaker].
type BreakerSettings struct {
	// Name identifies the breaker in OnStateChange, usually the route.
	Name string

	// Failures is the number of consecutive failures that open a closed
	// breaker: the Failures-th failure in a row trips it. If Failures is 0
	// or less, 5 is used.
	Failures int

	// OpenFor is how long an open breaker refuses calls before it turns
	// half-open. If OpenFor is 0 or less, 10s is used.
	OpenFor time.Duration

	// HalfOpenRequests is how many probes a half-open breaker lets through;
	// the breaker closes when that many in a row succeed and opens again at
	// the first failure. If HalfOpenRequests is 0 or less, 1 is used.
	HalfOpenRequests int

	// FailureRatio, if above 0, also opens the breaker when at least
	// MinRequests calls have ended within the last Window and this fraction
	// of them (0 < FailureRatio ≤ 1) failed. Excluded outcomes count in
	// neither. If FailureRatio is 0, only consecutive failures count.
	FailureRatio float64

	// Window is the rolling period over which FailureRatio is measured, in
	// ten buckets of Window/10. It also resets the consecutive-failure
	// count of a closed breaker as the window rolls. If FailureRatio is set
	// and Window is 0, 1m is used; Window is ignored when FailureRatio is 0.
	Window time.Duration

	// MinRequests is the least number of counted outcomes in the window
	// before FailureRatio is consulted. If 0 or less, 10 is used.
	MinRequests int

	// RefusalGrace is how long a run of [Refused] outcomes, with no
	// [Success] in between, counts for nothing before each further refusal
	// counts as a [Failure]. A quorum queue whose leader is being elected
	// refuses publishes for about 0.3 s on an idle machine and has for 4 s
	// on a loaded one; a queue at its length limit with x-overflow
	// reject-publish refuses until it drains. If RefusalGrace is 0 or
	// less, 10s is used.
	RefusalGrace time.Duration

	// OnStateChange, if not nil, is called on every transition. It runs
	// with the breaker's lock held (gobreaker calls it from setState): it
	// must be quick and must not call back into the breaker.
	OnStateChange func(name string, from, to BreakerState)
}

// BreakerState is the state of a [Breaker].
type BreakerState int

// The states of a breaker.
const (
	BreakerClosed   BreakerState = BreakerState(gobreaker.StateClosed)
	BreakerHalfOpen BreakerState = BreakerState(gobreaker.StateHalfOpen)
	BreakerOpen     BreakerState = BreakerState(gobreaker.StateOpen)
)

func (s BreakerState) String() string { return gobreaker.State(s).String() }

// Outcome is what a call let through by a breaker reports back.
type Outcome int

const (
	// Success: the call did its job, or the service answered for itself.
	Success Outcome = iota
	// Failure: the call failed in a way that says the route is unhealthy.
	Failure
	// Ignored: the outcome says nothing about the route's health (the
	// caller cancelled); it counts neither way and frees a half-open probe
	// slot.
	Ignored
	// Refused: the destination refused the call for now (a publish
	// nacked). Refusals count as Ignored while they have lasted less than
	// RefusalGrace since the first one after the last Success, and as
	// Failure after that: a brief refusal is the broker moving a queue,
	// a lasting one is the route's destination refusing work.
	Refused
)

func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Ignored:
		return "ignored"
	case Refused:
		return "refused"
	}
	return "unknown outcome"
}

// Errors of [Breaker.Allow].
var (
	// ErrBreakerOpen: the breaker is open and refuses every call.
	ErrBreakerOpen = errors.New("circuit breaker open")
	// ErrBreakerProbing: the breaker is half-open and its probes are all
	// taken.
	ErrBreakerProbing = errors.New("circuit breaker half-open, probes taken")
)

// Breaker is a circuit breaker for one route, on gobreaker's two-step
// breaker: [Breaker.Allow] admits or refuses a call before it starts, and
// the call reports its [Outcome] when it ends. It does no I/O and is safe
// for concurrent use.
type Breaker struct {
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	settings BreakerSettings
	// refusedSince is when the current run of Refused outcomes began, in
	// Unix nanoseconds, or 0 when the last counted outcome was a Success.
	refusedSince atomic.Int64
}

// Sentinels passed to gobreaker for each outcome: gobreaker classifies
// errors, and the caller has already classified.
var (
	errFailure = errors.New("failure")
	errIgnored = errors.New("ignored")
)

// NewBreaker returns a closed breaker.
func NewBreaker(s BreakerSettings) *Breaker {
	if s.Failures <= 0 {
		s.Failures = DefaultFailures
	}
	if s.OpenFor <= 0 {
		s.OpenFor = DefaultOpenFor
	}
	if s.HalfOpenRequests <= 0 {
		s.HalfOpenRequests = DefaultHalfOpenRequests
	}
	if s.RefusalGrace <= 0 {
		s.RefusalGrace = DefaultRefusalGrace
	}
	if s.FailureRatio > 0 {
		if s.Window <= 0 {
			s.Window = DefaultWindow
		}
		if s.MinRequests <= 0 {
			s.MinRequests = DefaultMinRequests
		}
	} else {
		s.Window, s.MinRequests = 0, 0
	}
	gs := gobreaker.Settings{
		Name:        s.Name,
		MaxRequests: uint32(s.HalfOpenRequests),
		Timeout:     s.OpenFor,
		// gobreaker's default trips when ConsecutiveFailures > 5, on the
		// 6th; ours trips on exactly the Failures-th.
		ReadyToTrip:  s.readyToTrip,
		IsSuccessful: func(err error) bool { return err == nil },
		IsExcluded:   func(err error) bool { return err == errIgnored },
	}
	if s.FailureRatio > 0 {
		gs.Interval = s.Window
		gs.BucketPeriod = s.Window / 10
	}
	if f := s.OnStateChange; f != nil {
		gs.OnStateChange = func(name string, from, to gobreaker.State) {
			f(name, BreakerState(from), BreakerState(to))
		}
	}
	return &Breaker{cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](gs), settings: s}
}

func (s *BreakerSettings) readyToTrip(c gobreaker.Counts) bool {
	if c.ConsecutiveFailures >= uint32(s.Failures) {
		return true
	}
	if s.FailureRatio <= 0 {
		return false
	}
	ended := c.TotalSuccesses + c.TotalFailures
	return ended >= uint32(s.MinRequests) && float64(c.TotalFailures) >= s.FailureRatio*float64(ended)
}

// Allow admits a call or refuses it at once with an error wrapping
// [ErrBreakerOpen] or [ErrBreakerProbing]. An admitted call must report its
// outcome through done; done may be called any number of times, only the
// first counts, so a deferred done(Ignored) can back a done(outcome) on the
// normal path. A half-open breaker whose probe never reports stays stuck,
// so every admitted call must reach done.
func (b *Breaker) Allow() (done func(Outcome), err error) {
	report, err := b.cb.Allow()
	switch {
	case errors.Is(err, gobreaker.ErrOpenState):
		return nil, ErrBreakerOpen
	case errors.Is(err, gobreaker.ErrTooManyRequests):
		return nil, ErrBreakerProbing
	case err != nil:
		return nil, err
	}
	var once atomic.Bool
	return func(o Outcome) {
		if !once.CompareAndSwap(false, true) {
			return
		}
		switch o {
		case Success:
			if b.refusedSince.Load() != 0 {
				b.refusedSince.Store(0)
			}
			report(nil)
		case Ignored:
			report(errIgnored)
		case Refused:
			if b.refusalLasting(time.Now()) {
				report(errFailure)
			} else {
				report(errIgnored)
			}
		default:
			report(errFailure)
		}
	}, nil
}

// refusalLasting records a refusal at now and reports whether the run of
// refusals it belongs to began RefusalGrace or more before now.
func (b *Breaker) refusalLasting(now time.Time) bool {
	first := b.refusedSince.Load()
	if first == 0 {
		if b.refusedSince.CompareAndSwap(0, now.UnixNano()) {
			return false
		}
		first = b.refusedSince.Load()
	}
	return now.Sub(time.Unix(0, first)) >= b.settings.RefusalGrace
}

// State returns the breaker's state now (an open breaker whose OpenFor has
// passed reports half-open).
func (b *Breaker) State() BreakerState { return BreakerState(b.cb.State()) }

// Settings returns the breaker's settings, defaults applied.
func (b *Breaker) Settings() BreakerSettings { return b.settings }
