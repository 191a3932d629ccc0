package config

import (
	"slices"
	"time"

	"github.com/figway/figway/adapters/amqp"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/resilience"
)

// Built-in defaults, as documented on the fields of Config. Those of a
// setting another package applies are that package's.
const (
	defaultGRPC                   = "127.0.0.1:8080"
	defaultHTTP                   = "127.0.0.1:8081"
	defaultAdmin                  = "127.0.0.1:9090"
	defaultOpenAPIPath            = "/openapi.json"
	defaultMaxRequestBytes        = gateway.DefaultMaxRequestBytes
	defaultMaxForwardedValueBytes = gateway.DefaultMaxForwardedValueBytes
	defaultMaxForwardedBytes      = gateway.DefaultMaxForwardedBytes
	defaultShutdownGrace          = 10 * time.Second

	defaultMaxHeaderBytes    = gateway.DefaultMaxHeaderBytes
	defaultReadHeaderTimeout = gateway.DefaultReadHeaderTimeout
	defaultReadTimeout       = gateway.DefaultReadTimeout
	defaultWriteTimeout      = gateway.DefaultWriteTimeout
	defaultIdleTimeout       = gateway.DefaultIdleTimeout

	defaultChannels    = amqp.DefaultChannels
	defaultHeartbeat   = amqp.DefaultHeartbeat
	defaultDialTimeout = amqp.DefaultDialTimeout

	defaultTimeout          = 5 * time.Second
	defaultMaxInFlight      = 1024
	defaultFailures         = resilience.DefaultFailures
	defaultOpenFor          = resilience.DefaultOpenFor
	defaultHalfOpenRequests = resilience.DefaultHalfOpenRequests
	defaultWindow           = resilience.DefaultWindow
	defaultMinRequests      = resilience.DefaultMinRequests
)

// applyDefaults fills every zero field that has a default, and makes each
// route inherit what it leaves out from c.Defaults. Values that decode
// reported as unknown (to: brokr) are left as they are.
func (c *Config) applyDefaults() {
	s := &c.Server
	setZero(&s.GRPC, defaultGRPC)
	setZero(&s.HTTP, defaultHTTP)
	setZero(&s.Admin, defaultAdmin)
	setZero(&s.MaxRequestBytes, defaultMaxRequestBytes)
	setZero(&s.MaxForwardedValueBytes, defaultMaxForwardedValueBytes)
	setZero(&s.MaxForwardedBytes, defaultMaxForwardedBytes)
	setZero(&s.ShutdownGrace, defaultShutdownGrace)
	setZero(&s.Operations.Path, defaultOperationsPath)
	setZero(&s.Operations.Stream, defaultOperationsStream)
	setZero(&s.Operations.Max, defaultOperationsMax)
	setZero(&s.Operations.MaxBytes, defaultOperationsMaxBytes)
	setZero(&s.OpenAPIPath, defaultOpenAPIPath)
	setZero(&s.MaxHeaderBytes, defaultMaxHeaderBytes)
	setZero(&s.ReadHeaderTimeout, defaultReadHeaderTimeout)
	setZero(&s.ReadTimeout, defaultReadTimeout)
	setZero(&s.WriteTimeout, defaultWriteTimeout)
	setZero(&s.IdleTimeout, defaultIdleTimeout)

	b := &c.Broker
	setZero(&b.Reply, ReplyDirect)
	setZero(&b.Channels, defaultChannels)
	setZero(&b.Heartbeat, defaultHeartbeat)
	setZero(&b.DialTimeout, defaultDialTimeout)

	d := &c.Defaults
	setZero(&d.Timeout, defaultTimeout)
	setZero(&d.MaxInFlight, defaultMaxInFlight)
	setZero(&d.Breaker.Failures, defaultFailures)
	setZero(&d.Breaker.OpenFor, defaultOpenFor)
	setZero(&d.Breaker.HalfOpenRequests, defaultHalfOpenRequests)
	windowDefaults(&d.Breaker)
	setZero(&d.Wire.CloudEvents, CloudEventsEvents)

	for i := range c.Routes {
		r := &c.Routes[i]
		setZero(&r.To, TargetBroker)
		publishes := r.To == TargetBroker || (r.To == TargetLegacy && r.Shadow)
		if publishes {
			pattern := PatternRPC
			if r.To == TargetLegacy && !r.Compare {
				pattern = PatternEvent // a shadow copy: nobody waits for a reply
			}
			setZero(&r.Pattern, pattern)
			setZero(&r.Encoding, EncodingProtobuf)
		}
		setZero(&r.Timeout, d.Timeout)
		setZero(&r.MaxInFlight, d.MaxInFlight)
		setZero(&r.Breaker.Failures, d.Breaker.Failures)
		setZero(&r.Breaker.OpenFor, d.Breaker.OpenFor)
		setZero(&r.Breaker.HalfOpenRequests, d.Breaker.HalfOpenRequests)
		setZero(&r.Breaker.FailureRatio, d.Breaker.FailureRatio)
		setZero(&r.Breaker.Window, d.Breaker.Window)
		setZero(&r.Breaker.MinRequests, d.Breaker.MinRequests)
		windowDefaults(&r.Breaker)
		if r.To == TargetBroker || r.Shadow {
			setZero(&r.Wire.CloudEvents, d.Wire.CloudEvents)
		}
		asyncDefaults(r, d)
		if r.ForwardHeaders == nil {
			r.ForwardHeaders = slices.Clone(d.ForwardHeaders)
		}
		if r.ResponseHeaders == nil {
			r.ResponseHeaders = slices.Clone(d.ResponseHeaders)
		}
		setZero(&r.PinBy, d.PinBy)
		edgeDefaults(r, d)
	}

	for i := range c.Topology.Exchanges {
		e := &c.Topology.Exchanges[i]
		if e.Durable == nil {
			e.Durable = ptr(true)
		}
	}
	for i := range c.Topology.Queues {
		q := &c.Topology.Queues[i]
		setZero(&q.Type, "classic")
		if q.Durable == nil {
			q.Durable = ptr(true)
		}
	}
}

func setZero[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

func ptr[T any](v T) *T { return &v }
