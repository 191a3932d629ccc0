package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// TraceStats are the counters of figway's trace export queue.
type TraceStats struct {
	Exported, DroppedQueueFull, DroppedExportFailed uint64
}

// Tracing exports the trace queue's counters, read at scrape time, as
// figway_trace_spans_exported_total and
// figway_trace_spans_dropped_total{reason="queue_full"|"export_failed"},
// and from then on puts the trace id of each sampled call on
// figway_request_duration_seconds as an exemplar (served in the
// OpenMetrics format to a scraper that asks for it). Call it once, before
// serving, and only when tracing is on.
func (m *Metrics) Tracing(stats func() TraceStats) {
	m.exemplars = true
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "figway_trace_spans_exported_total", Help: "Spans the trace exporter took.",
		}, func() float64 { return float64(stats().Exported) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "figway_trace_spans_dropped_total", Help: "Spans dropped without being exported, by reason: queue_full (the exporter down or slow) or export_failed.",
			ConstLabels: prometheus.Labels{"reason": "queue_full"},
		}, func() float64 { return float64(stats().DroppedQueueFull) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "figway_trace_spans_dropped_total", Help: "Spans dropped without being exported, by reason: queue_full (the exporter down or slow) or export_failed.",
			ConstLabels: prometheus.Labels{"reason": "export_failed"},
		}, func() float64 { return float64(stats().DroppedExportFailed) }),
	)
}

// observe is ObserveRequest for a call served under ctx: with tracing on,
// a sampled call's trace id goes with its latency as an exemplar.
func (m *Metrics) observe(ctx context.Context, route, ingress, code string, d time.Duration) {
	if !m.exemplars {
		m.ObserveRequest(route, ingress, code, d)
		return
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() {
		m.ObserveRequest(route, ingress, code, d)
		return
	}
	m.requests.WithLabelValues(route, ingress, code).Inc()
	m.duration.WithLabelValues(route, ingress).(prometheus.ExemplarObserver).
		ObserveWithExemplar(d.Seconds(), prometheus.Labels{"trace_id": sc.TraceID().String()})
}
