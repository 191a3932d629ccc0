package statuspage

import (
	"fmt"
	"math"
	"strings"
)

// chart is a route's small line chart over the window: calls per second
// (an area) and p99 latency (a line), between consecutive samples, drawn
// as inline SVG by the template.
type chart struct {
	W, H       int
	Area, Line string // SVG points
	MaxRate    float64
	MaxP99     float64 // seconds
	Empty      bool    // no calls in the window
}

const chartW, chartH = 120, 32

// chartOf draws route's chart from consecutive samples.
func chartOf(points []*sample, route string) chart {
	c := chart{W: chartW, H: chartH}
	n := len(points) - 1
	if n < 1 {
		c.Empty = true
		return c
	}
	rates, p99s := make([]float64, n), make([]float64, n)
	for i := range n {
		d := between(points[i], points[i+1], route)
		if d.seconds > 0 {
			rates[i] = d.calls() / d.seconds
		}
		p99s[i] = d.quantile(.99)
		c.MaxRate = math.Max(c.MaxRate, rates[i])
		if !math.IsNaN(p99s[i]) {
			c.MaxP99 = math.Max(c.MaxP99, p99s[i])
		}
	}
	if c.MaxRate == 0 {
		c.Empty = true
		return c
	}
	// x by time, so that the newest interval (often shorter) sits at the
	// right edge.
	t0, t1 := points[0].at, points[n].at
	span := t1.Sub(t0).Seconds()
	x := func(i int) float64 {
		if span <= 0 {
			return float64(chartW)
		}
		return float64(chartW) * points[i+1].at.Sub(t0).Seconds() / span
	}
	const pad = 2
	y := func(v, max float64) float64 {
		return pad + (chartH-2*pad)*(1-v/max)
	}
	var area, line strings.Builder
	fmt.Fprintf(&area, "%.1f,%d", x(0)-float64(chartW)/float64(n), chartH)
	for i := range n {
		fmt.Fprintf(&area, " %.1f,%.1f", x(i), y(rates[i], c.MaxRate))
		if !math.IsNaN(p99s[i]) && c.MaxP99 > 0 {
			fmt.Fprintf(&line, "%.1f,%.1f ", x(i), y(p99s[i], c.MaxP99))
		}
	}
	fmt.Fprintf(&area, " %.1f,%d", x(n-1), chartH)
	c.Area, c.Line = area.String(), strings.TrimSpace(line.String())
	return c
}
