package ramp

import (
	"testing"
	"time"
)

func TestHistogramQuantile(t *testing.T) {
	var h Histogram
	for i := range 1000 {
		h = h.observe(time.Duration(i+1) * time.Millisecond)
	}
	p99 := h.Quantile(0.99)
	if p99 < 990*time.Millisecond || p99 > 1010*time.Millisecond {
		t.Errorf("p99 of 1..1000 ms = %v; want 990 ms to +2 %%", p99)
	}
	if got := (Histogram{}).Quantile(0.99); got != 0 {
		t.Errorf("p99 of nothing = %v", got)
	}
}
