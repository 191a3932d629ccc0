package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/figway/figway/auth"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/operations"
	"github.com/figway/figway/resilience"
)

// Sources are what the state collector reads at every scrape. A nil field
// leaves its series out.
type Sources struct {
	// Table returns the route table serving now.
	Table func() *gateway.Table
	// Broker returns the AMQP client's counters.
	Broker func() BrokerStats
	// Ready reports what /readyz reports.
	Ready func() bool
	// Migration returns the canary, fallback and shadow counters of a
	// route's method.
	Migration func(method string) gateway.Migration
	// Operations returns the async operations' counts, and false when
	// no route is async.
	Operations func() (operations.Stats, bool)
	// Consumers returns the consumers of the queues of a route's method,
	// and whether they are known.
	Consumers func(method string) (n int, known bool)
	// Edge returns the counts of a route's edge checks (auth, rate_limit).
	Edge func(method string) gateway.Edge
	// KeySets returns the state of the routes' JWT key sets.
	KeySets func() []auth.State
}

// BrokerStats are the broker connection's counters, as the AMQP client
// keeps them.
type BrokerStats struct {
	Connected, Blocked bool
	// Pending is the number of rpc calls waiting for a reply.
	Pending int
	// UnmatchedReplies counts replies no call waited for; Reconnects counts
	// the connections made after the first.
	UnmatchedReplies, Reconnects uint64
	// ChannelsRenewed counts channels replaced because a queue kept
	// nacking their publishes.
	ChannelsRenewed uint64
	// Stalls counts the connections left because their node stalled.
	Stalls uint64
	// ChannelsStuck counts the channels abandoned as stuck.
	ChannelsStuck uint64
}

// stateCollector turns Sources into series at scrape time.
type stateCollector struct {
	src Sources

	inFlight, maxInFlight, breaker, routes             *prometheus.Desc
	unmatched, pending, reconnects, connected, blocked *prometheus.Desc
	renewed, stalls, stuck                             *prometheus.Desc
	ready, consumers                                   *prometheus.Desc

	ops, opsBytes, opsExpired, opsEvicted, opsRefused, opsConcluded, opsLag *prometheus.Desc

	noConsumer                                                                    *prometheus.Desc
	canary, fallbacks, fallingBack, shadowCopies, shadowMismatches, shadowMatches *prometheus.Desc
	pinned                                                                        *prometheus.Desc
}

func newStateCollector(src Sources) *stateCollector {
	route := []string{"route"}
	return &stateCollector{
		src:         src,
		inFlight:    prometheus.NewDesc("figway_requests_in_flight", "Calls of the route now waiting for the broker (its bulkhead's count).", route, nil),
		maxInFlight: prometheus.NewDesc("figway_route_max_in_flight", "The route's in-flight limit (max_in_flight).", route, nil),
		breaker:     prometheus.NewDesc("figway_breaker_state", "1 for the state the route's circuit breaker is in (closed, half_open, open), 0 for the others.", []string{"route", "state"}, nil),
		routes:      prometheus.NewDesc("figway_routes", "Routes in the table serving now.", nil, nil),
		unmatched:   prometheus.NewDesc("figway_replies_unmatched_total", "Replies dropped because no call waited for their correlation id (late, duplicate or forged).", nil, nil),
		pending:     prometheus.NewDesc("figway_replies_pending", "rpc calls published and waiting for their reply.", nil, nil),
		reconnects:  prometheus.NewDesc("figway_broker_reconnects_total", "Connections to RabbitMQ made after the first.", nil, nil),
		renewed:     prometheus.NewDesc("figway_broker_channels_renewed_total", "AMQP channels replaced because a queue kept nacking their publishes (a quorum queue stuck on a dead leader, RabbitMQ 3.10).", nil, nil),
		stuck:       prometheus.NewDesc("figway_broker_channels_stuck_total", "AMQP channels abandoned as stuck: a publish on one went unconfirmed broker.stall_timeout after a later publish to the same destination, on another channel, was confirmed (RabbitMQ 3.10 after a network partition); the calls on it failed UNAVAILABLE.", nil, nil),
		stalls:      prometheus.NewDesc("figway_broker_stalls_total", "Connections to RabbitMQ left because their node stalled: publishes waited broker.stall_timeout with no publisher confirm arriving (a node cut off by a network partition).", nil, nil),
		connected:   prometheus.NewDesc("figway_broker_connected", "1 while connected to RabbitMQ with topology and reply consumers in place.", nil, nil),
		blocked:     prometheus.NewDesc("figway_broker_blocked", "1 while RabbitMQ blocks the connection (memory or disk alarm).", nil, nil),
		ready:       prometheus.NewDesc("figway_ready", "1 when /readyz answers 200.", nil, nil),
		consumers:   prometheus.NewDesc("figway_route_consumers", "Consumers of the route's queues, as last counted; no series while they are not known (no queue known for the route, the queue does not exist, or figway is not connected).", route, nil),

		ops:          prometheus.NewDesc("figway_operations", "Async operations held, by state (pending or done).", []string{"state"}, nil),
		opsBytes:     prometheus.NewDesc("figway_operations_bytes", "Memory held by async operations, replies included (estimated).", nil, nil),
		opsExpired:   prometheus.NewDesc("figway_operations_expired_total", "Done async operations dropped once kept for their keep.", nil, nil),
		opsEvicted:   prometheus.NewDesc("figway_operations_evicted_total", "Done async operations dropped before their keep to make room (operations_max, operations_max_bytes).", nil, nil),
		opsRefused:   prometheus.NewDesc("figway_operations_refused_total", "Calls answered 503 instead of 202 because no operation could be made room for, or the stream was down.", nil, nil),
		opsConcluded: prometheus.NewDesc("figway_operations_concluded_total", "Pending operations ended UNAVAILABLE at their deadline because the figway that published them never recorded their outcome.", nil, nil),
		opsLag:       prometheus.NewDesc("figway_operations_stream_lag_seconds", "Time from the appending of the last record read from the operations stream to its reading.", nil, nil),

		canary:           prometheus.NewDesc("figway_canary_calls_total", "Calls of a canary route, by the side they went to (broker or legacy).", []string{"route", "to"}, nil),
		noConsumer:       prometheus.NewDesc("figway_no_consumer_total", "rpc calls not published because the route's queues had no consumer: refused UNAVAILABLE, or sent to legacy with fallback: legacy.", route, nil),
		fallbacks:        prometheus.NewDesc("figway_fallbacks_total", "Calls sent to legacy because the broker path refused them (fallback: legacy).", route, nil),
		fallingBack:      prometheus.NewDesc("figway_fallback_active", "1 while the route's calls fall back to legacy.", route, nil),
		shadowCopies:     prometheus.NewDesc("figway_shadow_copies_total", "Calls of a shadowing route, by what became of their copy: sent (published), dropped (queue full), failed (broker side), sampled_out (not mirrored: outside shadow.percent).", []string{"route", "result"}, nil),
		pinned:           prometheus.NewDesc("figway_pinned_calls_total", "Calls sent to a side by their pin_by header (broker or legacy), before any weight.", []string{"route", "to"}, nil),
		shadowMismatches: prometheus.NewDesc("figway_shadow_mismatches_total", "Shadow copies whose broker reply differed from legacy's (compare: true).", route, nil),
		shadowMatches:    prometheus.NewDesc("figway_shadow_matches_total", "Shadow copies whose broker reply matched legacy's (compare: true).", route, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inFlight, c.maxInFlight, c.breaker, c.routes,
		c.unmatched, c.pending, c.reconnects, c.renewed, c.stalls, c.stuck, c.connected, c.blocked, c.ready, c.consumers,
		c.ops, c.opsBytes, c.opsExpired, c.opsEvicted, c.opsRefused, c.opsConcluded, c.opsLag,
		c.noConsumer, c.canary, c.fallbacks, c.fallingBack, c.shadowCopies, c.shadowMismatches, c.shadowMatches, c.pinned} {
		ch <- d
	}
}

// breakerStates are the label values of figway_breaker_state.
var breakerStates = []struct {
	s    resilience.BreakerState
	name string
}{{resilience.BreakerClosed, "closed"}, {resilience.BreakerHalfOpen, "half_open"}, {resilience.BreakerOpen, "open"}}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if c.src.Table != nil {
		rs := c.src.Table().Routes()
		gauge(c.routes, float64(len(rs)))
		for _, r := range rs {
			gauge(c.inFlight, float64(r.InFlight()), r.Method)
			gauge(c.maxInFlight, float64(r.MaxInFlight()), r.Method)
			st := r.BreakerState()
			for _, b := range breakerStates {
				gauge(c.breaker, bool01(st == b.s), r.Method, b.name)
			}
			if c.src.Migration != nil {
				c.migration(r, c.src.Migration(r.Method), gauge, counter)
			}
			if c.src.Consumers != nil {
				if n, known := c.src.Consumers(r.Method); known {
					gauge(c.consumers, float64(n), r.Method)
				}
			}
		}
	}
	if c.src.Broker != nil {
		s := c.src.Broker()
		counter(c.unmatched, s.UnmatchedReplies)
		counter(c.reconnects, s.Reconnects)
		counter(c.renewed, s.ChannelsRenewed)
		counter(c.stalls, s.Stalls)
		counter(c.stuck, s.ChannelsStuck)
		gauge(c.pending, float64(s.Pending))
		gauge(c.connected, bool01(s.Connected))
		gauge(c.blocked, bool01(s.Blocked))
	}
	if c.src.Ready != nil {
		gauge(c.ready, bool01(c.src.Ready()))
	}
	if c.src.Operations != nil {
		if s, ok := c.src.Operations(); ok {
			gauge(c.ops, float64(s.Pending), "pending")
			gauge(c.ops, float64(s.Done), "done")
			gauge(c.opsBytes, float64(s.Bytes))
			counter(c.opsExpired, s.Expired)
			counter(c.opsEvicted, s.Evicted)
			counter(c.opsRefused, s.Refused)
			counter(c.opsConcluded, s.Concluded)
			gauge(c.opsLag, s.Lag.Seconds())
		}
	}
}

// migration reports the strangler-fig series of the routes that use each
// setting only: canary (weight), fallback, shadow, compare.
func (c *stateCollector) migration(r *gateway.Route, m gateway.Migration,
	gauge func(*prometheus.Desc, float64, ...string), counter func(*prometheus.Desc, uint64, ...string)) {
	route := r.Method
	if r.Publishes() && r.Pattern == gateway.PatternRPC && len(r.Queues) > 0 {
		counter(c.noConsumer, m.NoConsumer, route)
	}
	if r.Canary() {
		counter(c.canary, m.CanaryBroker, route, "broker")
		counter(c.canary, m.CanaryLegacy, route, "legacy")
	}
	if r.FallsBack() {
		counter(c.fallbacks, m.Fallbacks, route)
		gauge(c.fallingBack, bool01(m.FallingBack), route)
	}
	if r.Pins() {
		counter(c.pinned, m.PinnedBroker, route, "broker")
		counter(c.pinned, m.PinnedLegacy, route, "legacy")
	}
	if r.Shadow {
		counter(c.shadowCopies, m.ShadowSent, route, "sent")
		counter(c.shadowCopies, m.ShadowDropped, route, "dropped")
		counter(c.shadowCopies, m.ShadowFailed, route, "failed")
		if r.ShadowPercent < 100 {
			counter(c.shadowCopies, m.ShadowSampledOut, route, "sampled_out")
		}
	}
	if r.Shadow && r.Compare {
		counter(c.shadowMismatches, m.ShadowMismatched, route)
		counter(c.shadowMatches, m.ShadowMatched, route)
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
