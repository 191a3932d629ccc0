package resilience

import (
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// run runs n calls through b that all end with o, and reports how many
// were admitted.
func run(b *Breaker, n int, o Outcome) int {
	admitted := 0
	for range n {
		done, err := b.Allow()
		if err != nil {
			continue
		}
		admitted++
		done(o)
	}
	return admitted
}

func TestBreakerTripsOnExactlyFailures(t *testing.T) {
	for _, failures := range []int{1, 2, 5, 6, 10} {
		b := NewBreaker(BreakerSettings{Failures: failures, OpenFor: time.Hour})
		for i := 1; i < failures; i++ {
			run(b, 1, Failure)
			if got := b.State(); got != BreakerClosed {
				t.Fatalf("Failures=%d: after %d failures State() = %v; want closed", failures, i, got)
			}
		}
		run(b, 1, Failure)
		if got := b.State(); got != BreakerOpen {
			t.Errorf("Failures=%d: after %d failures State() = %v; want open", failures, failures, got)
		}
		if _, err := b.Allow(); !errors.Is(err, ErrBreakerOpen) {
			t.Errorf("Failures=%d: Allow() on open breaker = %v; want ErrBreakerOpen", failures, err)
		}
	}
}

func TestBreakerSuccessAndIgnoredDoNotTrip(t *testing.T) {
	b := NewBreaker(BreakerSettings{Failures: 3, OpenFor: time.Hour})
	// Two failures, a success resets; cancellations count neither way.
	run(b, 2, Failure)
	run(b, 1, Success)
	run(b, 2, Failure)
	run(b, 10, Ignored)
	if got := b.State(); got != BreakerClosed {
		t.Fatalf("State() = %v; want closed (no 3 failures in a row)", got)
	}
	run(b, 1, Failure)
	if got := b.State(); got != BreakerOpen {
		t.Errorf("State() = %v; want open after the 3rd failure in a row (ignored ones in between)", got)
	}
}

func TestBreakerHalfOpenTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var changes []string
		b := NewBreaker(BreakerSettings{Name: "r", Failures: 2, OpenFor: 10 * time.Second, HalfOpenRequests: 2,
			OnStateChange: func(name string, from, to BreakerState) {
				mu.Lock()
				changes = append(changes, from.String()+"→"+to.String())
				mu.Unlock()
			}})
		run(b, 2, Failure)
		// gobreaker turns half-open once open_for has passed, not at it.
		time.Sleep(10 * time.Second)
		if got := b.State(); got != BreakerOpen {
			t.Fatalf("at open_for: State() = %v; want open", got)
		}
		time.Sleep(time.Nanosecond)
		if got := b.State(); got != BreakerHalfOpen {
			t.Fatalf("1ns after open_for: State() = %v; want half-open", got)
		}
		// Exactly two probes; the third is refused while they run.
		d1, err1 := b.Allow()
		d2, err2 := b.Allow()
		_, err3 := b.Allow()
		if err1 != nil || err2 != nil || !errors.Is(err3, ErrBreakerProbing) {
			t.Fatalf("half-open Allow ×3 = %v, %v, %v; want nil, nil, ErrBreakerProbing", err1, err2, err3)
		}
		d1(Success)
		d1(Failure) // a second report is ignored
		if got := b.State(); got != BreakerHalfOpen {
			t.Fatalf("after 1 of 2 probes: State() = %v; want half-open", got)
		}
		d2(Success)
		if got := b.State(); got != BreakerClosed {
			t.Fatalf("after 2 successful probes: State() = %v; want closed", got)
		}

		// Open again; a failed probe reopens for a full open_for.
		run(b, 2, Failure)
		time.Sleep(10*time.Second + time.Nanosecond)
		d, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		d(Failure)
		if got := b.State(); got != BreakerOpen {
			t.Fatalf("after a failed probe: State() = %v; want open", got)
		}
		time.Sleep(10 * time.Second)
		if _, err := b.Allow(); !errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("before the new open_for ends: Allow() = %v; want ErrBreakerOpen", err)
		}
		mu.Lock()
		defer mu.Unlock()
		want := []string{"closed→open", "open→half-open", "half-open→closed", "closed→open", "open→half-open", "half-open→open"}
		if len(changes) != len(want) {
			t.Fatalf("state changes = %v; want %v", changes, want)
		}
		for i := range want {
			if changes[i] != want[i] {
				t.Errorf("state changes = %v; want %v", changes, want)
				break
			}
		}
	})
}

// A probe whose caller cancels reports Ignored: it frees its slot for
// another probe instead of leaving the breaker stuck half-open.
func TestBreakerCancelledProbeFreesSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(BreakerSettings{Failures: 1, OpenFor: time.Second, HalfOpenRequests: 1})
		run(b, 1, Failure)
		time.Sleep(time.Second + time.Nanosecond)
		d, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Allow(); !errors.Is(err, ErrBreakerProbing) {
			t.Fatalf("second probe: Allow() = %v; want ErrBreakerProbing", err)
		}
		d(Ignored)
		d(Ignored)
		d(Success) // only the first report counts
		d2, err := b.Allow()
		if err != nil {
			t.Fatalf("after a cancelled probe: Allow() = %v; want a new probe", err)
		}
		if _, err := b.Allow(); !errors.Is(err, ErrBreakerProbing) {
			t.Fatalf("after a cancelled probe, two more: Allow() = %v; want ErrBreakerProbing (one slot freed, not more)", err)
		}
		d2(Success)
		if got := b.State(); got != BreakerClosed {
			t.Errorf("State() = %v; want closed", got)
		}
	})
}

func TestBreakerHalfOpenConcurrentProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const probes = 3
		b := NewBreaker(BreakerSettings{Failures: 1, OpenFor: time.Second, HalfOpenRequests: probes})
		run(b, 1, Failure)
		time.Sleep(time.Second + time.Nanosecond)
		var admitted sync.WaitGroup
		var mu sync.Mutex
		var dones []func(Outcome)
		n := 0
		for range 50 {
			admitted.Go(func() {
				if d, err := b.Allow(); err == nil {
					mu.Lock()
					dones = append(dones, d)
					n++
					mu.Unlock()
				}
			})
		}
		admitted.Wait()
		if n != probes {
			t.Fatalf("%d of 50 concurrent calls admitted half-open; want exactly %d", n, probes)
		}
		for _, d := range dones {
			d(Success)
		}
		if got := b.State(); got != BreakerClosed {
			t.Errorf("State() = %v; want closed", got)
		}
	})
}

func TestBreakerFailureRatio(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(BreakerSettings{Failures: 100, OpenFor: time.Minute, FailureRatio: 0.5, Window: 10 * time.Second, MinRequests: 10})
		// 4 failures of 9: too few calls and under the ratio.
		run(b, 5, Success)
		run(b, 4, Failure)
		if got := b.State(); got != BreakerClosed {
			t.Fatalf("4/9 failed: State() = %v; want closed", got)
		}
		// The 10th call fails: 5/10 = 0.5 with 10 calls ends the window.
		run(b, 1, Failure)
		if got := b.State(); got != BreakerOpen {
			t.Fatalf("5/10 failed: State() = %v; want open", got)
		}

		// Old outcomes leave the window: 5 failures then, a window later
		// 5 successes and 4 failures: 4/9 < min requests.
		b = NewBreaker(BreakerSettings{Failures: 100, OpenFor: time.Minute, FailureRatio: 0.5, Window: 10 * time.Second, MinRequests: 10})
		run(b, 5, Failure)
		time.Sleep(11 * time.Second)
		run(b, 5, Success)
		run(b, 4, Failure)
		if got := b.State(); got != BreakerClosed {
			t.Errorf("failures older than the window counted: State() = %v; want closed", got)
		}
		// Ignored outcomes count in neither.
		run(b, 20, Ignored)
		if got := b.State(); got != BreakerClosed {
			t.Errorf("ignored outcomes counted: State() = %v; want closed", got)
		}
	})
}

func TestBreakerDefaults(t *testing.T) {
	s := NewBreaker(BreakerSettings{}).Settings()
	if s.Failures != 5 || s.OpenFor != 10*time.Second || s.HalfOpenRequests != 1 || s.Window != 0 {
		t.Errorf("defaults = %+v; want 5 failures, 10s open, 1 probe, no window", s)
	}
	s = NewBreaker(BreakerSettings{FailureRatio: 0.5}).Settings()
	if s.Window != time.Minute || s.MinRequests != 10 {
		t.Errorf("ratio defaults = %+v; want 1m window, 10 requests", s)
	}
}

// TestBreakerRefusalsCountOnlyWhenTheyLast: a run of refusals (nacks)
// shorter than RefusalGrace never opens the breaker, however many; once
// the run has lasted RefusalGrace, refusals count as failures and the
// breaker opens on the Failures-th; a success ends the run.
func TestBreakerRefusalsCountOnlyWhenTheyLast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(BreakerSettings{Failures: 5, OpenFor: time.Hour, RefusalGrace: 3 * time.Second})
		// A leader election: 1,000 refusals over 2.9 s.
		for range 1000 {
			run(b, 1, Refused)
			time.Sleep(2900 * time.Microsecond)
		}
		if got := b.State(); got != BreakerClosed {
			t.Fatalf("after 2.9 s of refusals State() = %v; want closed", got)
		}
		// A success ends the run: the next 2.9 s of refusals are a new one.
		run(b, 1, Success)
		for range 29 {
			run(b, 10, Refused)
			time.Sleep(100 * time.Millisecond)
		}
		if got := b.State(); got != BreakerClosed {
			t.Fatalf("after a success and 2.9 s of refusals State() = %v; want closed", got)
		}
		// The run goes on past the grace: refusals now count, and the
		// 5th in a row opens the breaker.
		time.Sleep(100 * time.Millisecond)
		run(b, 4, Refused)
		if got := b.State(); got != BreakerClosed {
			t.Fatalf("after 4 counted refusals State() = %v; want closed", got)
		}
		run(b, 1, Refused)
		if got := b.State(); got != BreakerOpen {
			t.Errorf("after 3 s of refusals and 5 counted ones State() = %v; want open", got)
		}
	})
}

func TestBreakerRefusalGraceDefault(t *testing.T) {
	if got := NewBreaker(BreakerSettings{}).Settings().RefusalGrace; got != DefaultRefusalGrace {
		t.Errorf("RefusalGrace = %v; want %v", got, DefaultRefusalGrace)
	}
}
