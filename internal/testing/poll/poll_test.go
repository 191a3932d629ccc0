package poll

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	took := Until(t, 10*time.Second, "third check", func() bool { return n.Add(1) == 3 })
	if n.Load() != 3 {
		t.Errorf("cond checked %d times; want 3", n.Load())
	}
	if took < 2*Interval {
		t.Errorf("Until = %v; want at least two intervals (%v)", took, 2*Interval)
	}
}

// recorder is a TB whose Fatalf records the failure and ends the
// goroutine it is called on, not the test.
type recorder struct{ msg chan string }

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg <- format
	runtime.Goexit() // as t.Fatalf ends the test's goroutine
}

func TestUntilFailsAfterTheDeadline(t *testing.T) {
	r := &recorder{msg: make(chan string, 1)}
	start := time.Now()
	go Until(r, 50*time.Millisecond, "never", func() bool { return false })
	select {
	case got := <-r.msg:
		if got != "%s: not within %v" {
			t.Errorf("Fatalf format = %q", got)
		}
		if took := time.Since(start); took < 50*time.Millisecond {
			t.Errorf("failed after %v; want not before the 50ms deadline", took)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Until did not give up within 30s of a 50ms deadline")
	}
}
