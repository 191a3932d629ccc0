package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/figway/figway/gateway"
)

// edgeCollector reports the edge checks of the routes (auth, rate_limit)
// and the state of the key sets, at scrape time.
type edgeCollector struct {
	src Sources

	refused, limited, keys                *prometheus.Desc
	jwksUp, jwksKeys, jwksReads, jwksGood *prometheus.Desc
}

func newEdgeCollector(src Sources) *edgeCollector {
	jwks := []string{"jwks"}
	return &edgeCollector{
		src:       src,
		refused:   prometheus.NewDesc("figway_auth_refused_total", "Calls refused by the route's auth (UNAUTHENTICATED / 401), by reason: missing, malformed, too_large, algorithm, unknown_key, no_keys, signature, expired, not_yet_valid, issuer, audience, claims.", []string{"route", "reason"}, nil),
		limited:   prometheus.NewDesc("figway_rate_limited_total", "Calls refused by the route's rate_limit (RESOURCE_EXHAUSTED / 429).", []string{"route"}, nil),
		keys:      prometheus.NewDesc("figway_rate_limit_keys", "Callers the route's rate_limit holds a bucket for (at most its max_keys).", []string{"route"}, nil),
		jwksUp:    prometheus.NewDesc("figway_jwks_up", "1 when the last read of the key set succeeded; 0 while it fails (the keys read before are kept) or before the first.", jwks, nil),
		jwksKeys:  prometheus.NewDesc("figway_jwks_keys", "Keys of the key set in use.", jwks, nil),
		jwksReads: prometheus.NewDesc("figway_jwks_reads_total", "Reads of the key set, by result (ok or failed).", []string{"jwks", "result"}, nil),
		jwksGood:  prometheus.NewDesc("figway_jwks_last_good_timestamp_seconds", "When the key set was last read successfully (Unix time); absent if never.", jwks, nil),
	}
}

func (c *edgeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.refused, c.limited, c.keys, c.jwksUp, c.jwksKeys, c.jwksReads, c.jwksGood} {
		ch <- d
	}
}

func (c *edgeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Table != nil && c.src.Edge != nil {
		for _, r := range c.src.Table().Routes() {
			c.route(ch, r, c.src.Edge(r.Method))
		}
	}
	if c.src.KeySets != nil {
		for _, s := range c.src.KeySets() {
			ch <- prometheus.MustNewConstMetric(c.jwksUp, prometheus.GaugeValue, bool01(s.Up), s.Source)
			ch <- prometheus.MustNewConstMetric(c.jwksKeys, prometheus.GaugeValue, float64(s.Keys), s.Source)
			ch <- prometheus.MustNewConstMetric(c.jwksReads, prometheus.CounterValue, float64(s.ReadsOK), s.Source, "ok")
			ch <- prometheus.MustNewConstMetric(c.jwksReads, prometheus.CounterValue, float64(s.ReadsFailed), s.Source, "failed")
			if !s.LastGood.IsZero() {
				ch <- prometheus.MustNewConstMetric(c.jwksGood, prometheus.GaugeValue, float64(s.LastGood.UnixNano())/1e9, s.Source)
			}
		}
	}
}

// route reports one route's edge series: those of the checks it has.
func (c *edgeCollector) route(ch chan<- prometheus.Metric, r *gateway.Route, e gateway.Edge) {
	if r.Auth != nil {
		if len(e.Refused) == 0 {
			// The series exists from the start, so rates over it work.
			ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, 0, r.Method, "missing")
		}
		for reason, n := range e.Refused {
			ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(n), r.Method, reason)
		}
	}
	if r.RateLimit != nil {
		ch <- prometheus.MustNewConstMetric(c.limited, prometheus.CounterValue, float64(e.Limited), r.Method)
		ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(r.RateLimitKeys()), r.Method)
	}
}
