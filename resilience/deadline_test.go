package resilience

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestEnded: a context ended by its deadline is a timeout, also when it was
// cancelled a transit time before the deadline (a gRPC client's reset at
// its own deadline) — within a tenth of its budget, 20 ms to 250 ms; a
// caller that went away earlier cancelled.
func TestEnded(t *testing.T) {
	tests := []struct {
		name     string
		deadline time.Duration // 0: none
		cancelAt time.Duration // 0: not cancelled
		wait     time.Duration
		want     error
	}{
		{name: "running", deadline: time.Second, wait: 500 * time.Millisecond, want: nil},
		{name: "deadline passed", deadline: time.Second, wait: 2 * time.Second, want: context.DeadlineExceeded},
		{name: "cancelled at the deadline", deadline: time.Second, cancelAt: time.Second - 5*time.Millisecond, wait: time.Second - time.Millisecond, want: context.DeadlineExceeded},
		{name: "cancelled long before", deadline: time.Second, cancelAt: 100 * time.Millisecond, wait: 200 * time.Millisecond, want: context.Canceled},
		{name: "cancelled a tenth before", deadline: time.Second, cancelAt: 900 * time.Millisecond, wait: 900 * time.Millisecond, want: context.DeadlineExceeded},
		{name: "cancelled just outside a tenth", deadline: time.Second, cancelAt: 899 * time.Millisecond, wait: 899 * time.Millisecond, want: context.Canceled},
		{name: "short budget: 20ms", deadline: 50 * time.Millisecond, cancelAt: 30 * time.Millisecond, wait: 30 * time.Millisecond, want: context.DeadlineExceeded},
		{name: "short budget: before 20ms", deadline: 50 * time.Millisecond, cancelAt: 29 * time.Millisecond, wait: 29 * time.Millisecond, want: context.Canceled},
		{name: "long budget: 250ms", deadline: time.Minute, cancelAt: time.Minute - 250*time.Millisecond, wait: time.Minute - 250*time.Millisecond, want: context.DeadlineExceeded},
		{name: "long budget: before 250ms", deadline: time.Minute, cancelAt: time.Minute - 251*time.Millisecond, wait: time.Minute - 251*time.Millisecond, want: context.Canceled},
		{name: "cancelled, no deadline", cancelAt: 100 * time.Millisecond, wait: 200 * time.Millisecond, want: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if tc.deadline > 0 {
					var c2 context.CancelFunc
					ctx, c2 = context.WithTimeout(ctx, tc.deadline)
					defer c2()
				}
				if tc.cancelAt > 0 {
					time.AfterFunc(tc.cancelAt, cancel)
				}
				time.Sleep(tc.wait)
				synctest.Wait()
				if got := Ended(ctx, start); got != tc.want {
					t.Errorf("Ended = %v; want %v", got, tc.want)
				}
			})
		})
	}
}
