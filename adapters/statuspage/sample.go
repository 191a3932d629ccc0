package statuspage

import (
	"math"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// sample is what the Prometheus registry held at one moment, per route:
// the page's numbers are differences between two samples, the rates of a
// dashboard over the same series a scrape reads.
type sample struct {
	at     time.Time
	routes map[string]*routeSample
	// gauges and counters without a route label, by series name.
	global map[string]float64
}

// routeSample is one route's series in a sample.
type routeSample struct {
	codes                          map[string]float64 // figway_requests_total by code, over both ingresses
	buckets                        []bucket           // figway_request_duration_seconds, over both ingresses
	count                          float64            // observations of the histogram
	canary                         map[string]float64 // figway_canary_calls_total by side
	fallbacks, mismatched, matched float64
	authRefused, rateLimited       float64 // over every reason

	// Gauges.
	inFlight, maxInFlight float64
	breaker               string // the figway_breaker_state at 1
	consumers             float64
	hasConsumers          bool // figway_route_consumers exists for the route

	// slowest is the slowest call of the route's histogram exemplars
	// (with tracing on, each bucket keeps its latest sampled call).
	slowest exemplar
}

// exemplar is a call a histogram kept as an exemplar: its latency, trace
// id and time.
type exemplar struct {
	seconds float64
	traceID string
	at      time.Time
}

// bucket is a cumulative histogram bucket.
type bucket struct {
	le    float64
	count float64
}

// Series the page reads.
const (
	seriesRequests   = "figway_requests_total"
	seriesDuration   = "figway_request_duration_seconds"
	seriesCanary     = "figway_canary_calls_total"
	seriesFallbacks  = "figway_fallbacks_total"
	seriesMismatches = "figway_shadow_mismatches_total"
	seriesMatches    = "figway_shadow_matches_total"
	seriesInFlight   = "figway_requests_in_flight"
	seriesMax        = "figway_route_max_in_flight"
	seriesBreaker    = "figway_breaker_state"
	seriesConsumers  = "figway_route_consumers"
	seriesRefused    = "figway_auth_refused_total"
	seriesLimited    = "figway_rate_limited_total"
)

// take gathers g into a sample.
func take(g prometheus.Gatherer, at time.Time) (*sample, error) {
	fams, err := g.Gather()
	s := &sample{at: at, routes: map[string]*routeSample{}, global: map[string]float64{}}
	if err != nil && len(fams) == 0 {
		return s, err
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			s.add(f.GetName(), m)
		}
	}
	return s, err
}

// add adds m, a series of family name, to s: to its route's figures if
// the page reads that family, else to the global figures if m has no
// labels.
func (s *sample) add(name string, m *dto.Metric) {
	switch name {
	case seriesRequests:
		s.route(m).codes[label(m, "code")] += m.GetCounter().GetValue()
	case seriesDuration:
		r, h := s.route(m), m.GetHistogram()
		r.count += float64(h.GetSampleCount())
		r.buckets = addBuckets(r.buckets, h.GetBucket())
		slowest(&r.slowest, h.GetBucket())
	case seriesCanary:
		s.route(m).canary[label(m, "to")] += m.GetCounter().GetValue()
	case seriesFallbacks:
		s.route(m).fallbacks = m.GetCounter().GetValue()
	case seriesMismatches:
		s.route(m).mismatched = m.GetCounter().GetValue()
	case seriesMatches:
		s.route(m).matched = m.GetCounter().GetValue()
	case seriesRefused:
		s.route(m).authRefused += m.GetCounter().GetValue()
	case seriesLimited:
		s.route(m).rateLimited = m.GetCounter().GetValue()
	case seriesInFlight:
		s.route(m).inFlight = m.GetGauge().GetValue()
	case seriesMax:
		s.route(m).maxInFlight = m.GetGauge().GetValue()
	case seriesBreaker:
		if m.GetGauge().GetValue() == 1 {
			s.route(m).breaker = label(m, "state")
		}
	case seriesConsumers:
		r := s.route(m)
		r.consumers, r.hasConsumers = m.GetGauge().GetValue(), true
	default:
		if len(m.GetLabel()) == 0 {
			switch {
			case m.Gauge != nil:
				s.global[name] = m.GetGauge().GetValue()
			case m.Counter != nil:
				s.global[name] = m.GetCounter().GetValue()
			}
		}
	}
}

// route returns the figures of m's route, made on first use.
func (s *sample) route(m *dto.Metric) *routeSample {
	name := label(m, "route")
	r := s.routes[name]
	if r == nil {
		r = &routeSample{codes: map[string]float64{}, canary: map[string]float64{}}
		s.routes[name] = r
	}
	return r
}

// slowest keeps in e the slowest of the buckets' exemplars that carry a
// trace id.
func slowest(e *exemplar, buckets []*dto.Bucket) {
	for _, b := range buckets {
		x := b.GetExemplar()
		if x == nil || x.GetValue() <= e.seconds {
			continue
		}
		for _, l := range x.GetLabel() {
			if l.GetName() == "trace_id" {
				*e = exemplar{seconds: x.GetValue(), traceID: l.GetValue(), at: x.GetTimestamp().AsTime()}
			}
		}
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// addBuckets adds the cumulative buckets of one histogram to another of
// the same bounds (the two ingresses of a route).
func addBuckets(to []bucket, from []*dto.Bucket) []bucket {
	if to == nil {
		to = make([]bucket, len(from))
		for i, b := range from {
			to[i] = bucket{le: b.GetUpperBound()}
		}
	}
	for i, b := range from {
		if i < len(to) {
			to[i].count += float64(b.GetCumulativeCount())
		}
	}
	return to
}

// delta is what a route did between two samples.
type delta struct {
	seconds             float64
	codes               map[string]float64
	buckets             []bucket
	count               float64
	canary              map[string]float64
	fallbacks           float64
	mismatched, matched float64
	authRefused         float64
	rateLimited         float64
}

// between returns what route did from a to b; a nil a is the start.
func between(a, b *sample, route string) delta {
	d := delta{codes: map[string]float64{}, canary: map[string]float64{}}
	if b == nil {
		return d
	}
	rb := b.routes[route]
	if rb == nil {
		return d
	}
	ra := &routeSample{}
	if a != nil {
		d.seconds = b.at.Sub(a.at).Seconds()
		if r := a.routes[route]; r != nil {
			ra = r
		}
	}
	// A counter that went down was reset (a route removed and added back
	// by a reload keeps its series, but be safe): count from zero.
	sub := func(x, y float64) float64 {
		if x < y {
			return x
		}
		return x - y
	}
	for code, v := range rb.codes {
		if n := sub(v, ra.codes[code]); n > 0 {
			d.codes[code] = n
		}
	}
	for side, v := range rb.canary {
		d.canary[side] = sub(v, ra.canary[side])
	}
	d.count = sub(rb.count, ra.count)
	d.fallbacks = sub(rb.fallbacks, ra.fallbacks)
	d.mismatched = sub(rb.mismatched, ra.mismatched)
	d.matched = sub(rb.matched, ra.matched)
	d.authRefused = sub(rb.authRefused, ra.authRefused)
	d.rateLimited = sub(rb.rateLimited, ra.rateLimited)
	d.buckets = make([]bucket, len(rb.buckets))
	for i, bk := range rb.buckets {
		var prev float64
		if i < len(ra.buckets) {
			prev = ra.buckets[i].count
		}
		d.buckets[i] = bucket{le: bk.le, count: sub(bk.count, prev)}
	}
	return d
}

// calls is the number of calls answered in the delta.
func (d delta) calls() float64 {
	var n float64
	for _, v := range d.codes {
		n += v
	}
	return n
}

// quantile estimates the q-quantile of the latencies in the delta, in
// seconds, as Prometheus's histogram_quantile does: linear within the
// bucket that holds it. NaN when there were no calls.
func (d delta) quantile(q float64) float64 {
	if d.count == 0 || len(d.buckets) == 0 {
		return math.NaN()
	}
	rank := q * d.count
	i := sort.Search(len(d.buckets), func(i int) bool { return d.buckets[i].count >= rank })
	if i == len(d.buckets) {
		// Above the highest bound: the highest bound is all we know.
		return d.buckets[len(d.buckets)-1].le
	}
	lo, below := 0.0, 0.0
	if i > 0 {
		lo, below = d.buckets[i-1].le, d.buckets[i-1].count
	}
	hi, in := d.buckets[i].le, d.buckets[i].count-below
	if in == 0 {
		return hi
	}
	return lo + (hi-lo)*(rank-below)/in
}
