package resilience

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	tests := []struct {
		b       Backoff
		attempt int
		lo, hi  time.Duration
	}{
		{Backoff{}, 0, 100 * time.Millisecond, 100 * time.Millisecond},
		{Backoff{}, 1, 100 * time.Millisecond, 200 * time.Millisecond},
		{Backoff{}, 3, 100 * time.Millisecond, 800 * time.Millisecond},
		{Backoff{}, 10, 100 * time.Millisecond, 2 * time.Second}, // the default cap
		{Backoff{}, 1000, 100 * time.Millisecond, 2 * time.Second},
		{Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}, 50, 20 * time.Millisecond, 200 * time.Millisecond},
		{Backoff{Min: time.Second, Max: time.Millisecond}, 5, time.Second, time.Second}, // Max below Min
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := tt.b.Delay(tt.attempt)
			if d < tt.lo || d > tt.hi {
				t.Fatalf("%+v.Delay(%d) = %v; want in [%v, %v]", tt.b, tt.attempt, d, tt.lo, tt.hi)
			}
			seen[d] = true
		}
		if tt.lo != tt.hi && len(seen) < 10 {
			t.Errorf("%+v.Delay(%d): %d distinct values in 200; want jitter", tt.b, tt.attempt, len(seen))
		}
	}
}
