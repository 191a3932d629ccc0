package metrics

import (
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Unrouted is the route label of calls to a method that has no route.
const Unrouted = "unrouted"

// Ingress label values.
const (
	IngressGRPC = "grpc"
	IngressHTTP = "http"
)

// latencyBuckets span a broker round trip on loopback (about a
// millisecond) up to the longest route timeouts, in seconds.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics holds figway's collectors and the registry that serves them.
// Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	confirms     *prometheus.HistogramVec
	reloads      *prometheus.CounterVec
	reloadOK     prometheus.Gauge
	reloadOKTime prometheus.Gauge
	exemplars    bool // set by Tracing before serving
}

// New returns figway's metrics, registered with the Go runtime and
// process collectors and with a collector that reads src at every scrape.
// version is the build's version, for figway_build_info.
func New(version string, src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "figway_requests_total",
			Help: "Calls answered, by route (full method name or \"unrouted\"), ingress (grpc or http) and code (gRPC code name for grpc, HTTP status for http).",
		}, []string{"route", "ingress", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "figway_request_duration_seconds",
			Help:    "Time from receiving a call to answering it, by route and ingress.",
			Buckets: latencyBuckets,
		}, []string{"route", "ingress"}),
		confirms: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "figway_publish_confirm_duration_seconds",
			Help:    "Time from publishing a message to RabbitMQ's publisher confirm, by result (ack or nack).",
			Buckets: latencyBuckets,
		}, []string{"result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "figway_config_reloads_total",
			Help: "Reloads of the routes file, by result: ok (the new table serves) or failed (refused; the old table stays).",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "figway_config_last_reload_successful",
			Help: "1 if the last reload of the routes file (or the start) succeeded, 0 if it was refused.",
		}),
		reloadOKTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "figway_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful load of the routes file, the start included.",
		}),
	}
	for _, r := range []string{"ok", "failed"} {
		m.reloads.WithLabelValues(r) // both series exist from the start, at 0
	}
	m.reloadOK.Set(1)
	m.reloadOKTime.SetToCurrentTime()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "figway_build_info",
		Help:        "Always 1; the labels say which figway runs.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	info.Set(1)
	m.reg.MustRegister(
		m.requests, m.duration, m.confirms, m.reloads, m.reloadOK, m.reloadOKTime, info,
		newStateCollector(src),
		newEdgeCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the registry in the Prometheus exposition formats: text,
// or OpenMetrics (with exemplars) to a scraper whose Accept asks for it.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
}

// Registry returns the registry, for tests and for collectors of other
// packages.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveRequest counts one answered call and its latency.
func (m *Metrics) ObserveRequest(route, ingress, code string, d time.Duration) {
	m.requests.WithLabelValues(route, ingress, code).Inc()
	m.duration.WithLabelValues(route, ingress).Observe(d.Seconds())
}

// ObserveConfirm records the time from a publish to its confirm. It fits
// amqp.Config.OnConfirm.
func (m *Metrics) ObserveConfirm(d time.Duration, ack bool) {
	result := "ack"
	if !ack {
		result = "nack"
	}
	m.confirms.WithLabelValues(result).Observe(d.Seconds())
}

// Reloaded records a reload of the routes file: ok if the new table
// serves, not ok if it was refused.
func (m *Metrics) Reloaded(ok bool) {
	if !ok {
		m.reloads.WithLabelValues("failed").Inc()
		m.reloadOK.Set(0)
		return
	}
	m.reloads.WithLabelValues("ok").Inc()
	m.reloadOK.Set(1)
	m.reloadOKTime.SetToCurrentTime()
}

// Connections exports the connections an ingress holds open and its cap
// (server.max_connections) as figway_ingress_connections{ingress} and
// figway_ingress_connections_max{ingress}; open is read at scrape time.
func (m *Metrics) Connections(ingress string, open func() int, limit int) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "figway_ingress_connections", Help: "Connections the ingress holds open.",
			ConstLabels: prometheus.Labels{"ingress": ingress},
		}, func() float64 { return float64(open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "figway_ingress_connections_max", Help: "Connections the ingress may hold open (server.max_connections); past it, new ones wait in the accept queue.",
			ConstLabels: prometheus.Labels{"ingress": ingress},
		}, func() float64 { return float64(limit) }),
	)
}
