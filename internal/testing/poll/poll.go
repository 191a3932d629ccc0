// Package poll is the tests' one way to wait for something that
// happens on another goroutine or in another process: poll a condition,
// always with a deadline, so that a test that waits can fail but never
// hang.
package poll

import "time"

// TB is the part of testing.TB that Until uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Interval is how often Until checks its condition.
const Interval = 5 * time.Millisecond

// Until checks cond every Interval until it holds, and returns how long
// that took. If cond does not hold within the given time, Until fails t
// with "what: not within <within>" and stops the test.
func Until(t TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(Interval)
	}
	return time.Since(start)
}
