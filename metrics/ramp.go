package metrics

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/figway/figway/gateway"
)

// RampSource is what the ramp series are read from at scrape time: the
// ramp controller (package ramp).
type RampSource interface {
	// Weight returns the percentage of a ramped route's calls sent to the
	// broker now.
	Weight(method string) int
	// Events counts a ramp's changes by event.
	Events(method string) map[string]uint64
}

// Ramps exports figway_route_weight{route} for every route that publishes
// (a ramp's current step, a canary's weight, 100 for a broker route, 0
// for a shadowing legacy route) and figway_ramp_events_total{route,event}
// for ramped routes. ramps may be nil when no route ramps. Call it once,
// before serving.
func (m *Metrics) Ramps(table func() *gateway.Table, ramps RampSource) {
	m.reg.MustRegister(&rampCollector{table: table, ramps: ramps,
		weight: prometheus.NewDesc("figway_route_weight", "Percentage of a route's calls sent to the broker now: a ramp's step, a canary's weight, 100 for a broker route, 0 for a shadowing legacy route.", []string{"route"}, nil),
		events: prometheus.NewDesc("figway_ramp_events_total", "Changes of a route's ramp, as this figway read them from the ramps stream, by event (start, step, done, breach, pause, resume, promote, rollback, reconfigure).", []string{"route", "event"}, nil),
	})
}

type rampCollector struct {
	table          func() *gateway.Table
	ramps          RampSource
	weight, events *prometheus.Desc
}

func (c *rampCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.weight
	ch <- c.events
}

func (c *rampCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.table().Routes() {
		if !r.Publishes() {
			continue
		}
		w := 100
		switch {
		case r.Ramp != nil && c.ramps != nil:
			w = c.ramps.Weight(r.Method)
		case r.Ramp != nil:
			w = r.Ramp.Steps[0]
		case r.Weight != nil:
			w = *r.Weight
		case r.To == gateway.TargetLegacy:
			w = 0
		}
		ch <- prometheus.MustNewConstMetric(c.weight, prometheus.GaugeValue, float64(w), r.Method)
		if r.Ramp == nil || c.ramps == nil {
			continue
		}
		ev := c.ramps.Events(r.Method)
		for _, name := range slices.Sorted(maps.Keys(ev)) {
			ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(ev[name]), r.Method, name)
		}
	}
}
