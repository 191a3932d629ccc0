package config

import (
	"reflect"
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

	defaultChannels     = amqp.DefaultChannels
	defaultHeartbeat    = amqp.DefaultHeartbeat
	defaultDialTimeout  = amqp.DefaultDialTimeout
	defaultStallTimeout = amqp.DefaultStallTimeout

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
	c.Server.applyDefaults()

	b := &c.Broker
	setZero(&b.Reply, ReplyDirect)
	setZero(&b.Channels, defaultChannels)
	setZero(&b.Heartbeat, defaultHeartbeat)
	setZero(&b.DialTimeout, defaultDialTimeout)
	setZero(&b.StallTimeout, defaultStallTimeout)

	d := &c.Defaults
	setZero(&d.Timeout, defaultTimeout)
	setZero(&d.MaxInFlight, defaultMaxInFlight)
	setZero(&d.Breaker.Failures, defaultFailures)
	setZero(&d.Breaker.OpenFor, defaultOpenFor)
	setZero(&d.Breaker.HalfOpenRequests, defaultHalfOpenRequests)
	windowDefaults(&d.Breaker)
	setZero(&d.Wire.CloudEvents, CloudEventsEvents)

	for i := range c.Routes {
		c.Routes[i].applyDefaults(*d)
	}
	topologyDefaults(&c.Topology)
}

func (s *Server) applyDefaults() {
	setZero(&s.GRPC, defaultGRPC)
	setZero(&s.HTTP, defaultHTTP)
	setZero(&s.Admin, defaultAdmin)
	setZero(&s.MaxRequestBytes, defaultMaxRequestBytes)
	setZero(&s.MaxForwardedValueBytes, defaultMaxForwardedValueBytes)
	setZero(&s.MaxForwardedBytes, defaultMaxForwardedBytes)
	setZero(&s.ShutdownGrace, defaultShutdownGrace)
	setZero(&s.Operations.Path, defaultOperationsPath)
	setZero(&s.Operations.Stream, defaultOperationsStream)
	setZero(&s.RampStream, defaultRampStream)
	setZero(&s.Operations.Max, defaultOperationsMax)
	setZero(&s.Operations.MaxBytes, defaultOperationsMaxBytes)
	setZero(&s.OpenAPIPath, defaultOpenAPIPath)
	setZero(&s.MaxHeaderBytes, defaultMaxHeaderBytes)
	setZero(&s.ReadHeaderTimeout, defaultReadHeaderTimeout)
	setZero(&s.ReadTimeout, defaultReadTimeout)
	setZero(&s.WriteTimeout, defaultWriteTimeout)
	setZero(&s.IdleTimeout, defaultIdleTimeout)
}

// applyDefaults fills r's target, and its pattern and encoding if it
// publishes, then has it inherit the rest from d.
func (r *Route) applyDefaults(d Route) {
	setZero(&r.To, TargetBroker)
	if r.Publishes() {
		pattern := PatternRPC
		if r.To == TargetLegacy && !r.Compare {
			pattern = PatternEvent // a shadow copy: nobody waits for a reply
		}
		setZero(&r.Pattern, pattern)
		setZero(&r.Encoding, EncodingProtobuf)
	}
	r.inherit(d)
	windowDefaults(&r.Breaker)
	asyncDefaults(r)
	rampDefaults(r)
}

// topologyDefaults makes exchanges and queues durable, and queues
// classic, unless the file says otherwise.
func topologyDefaults(t *Topology) {
	for i := range t.Exchanges {
		e := &t.Exchanges[i]
		if e.Durable == nil {
			e.Durable = ptr(true)
		}
	}
	for i := range t.Queues {
		q := &t.Queues[i]
		setZero(&q.Type, "classic")
		if q.Durable == nil {
			q.Durable = ptr(true)
		}
	}
}

// inherit gives r every setting it leaves out from d, defaults decoded as a
// Route: a zero field (nil for lists, so that YAML [] stays "none") takes
// d's value, and a struct or pointer to one that r sets in part takes d's
// values for the fields it leaves zero. Only a route that publishes takes
// defaults.wire, only an rpc route to the broker defaults.async; auth and
// rate_limit are taken whole, and not at all by a route that writes off.
func (r *Route) inherit(d Route) {
	if !r.Publishes() {
		d.Wire = Wire{}
	}
	if r.Async == nil && (r.To != TargetBroker || r.Pattern != PatternRPC) {
		d.Async = nil
	}
	if r.To != TargetBroker || r.Weight != nil {
		d.Ramp = nil // a ramp is for broker routes without a weight of their own
	}
	if r.Auth != nil || r.AuthOff { // auth and rate_limit are inherited whole
		d.Auth = nil
	}
	if r.RateLimit != nil || r.RateLimitOff {
		d.RateLimit = nil
	}
	fill(reflect.ValueOf(r).Elem(), reflect.ValueOf(d))
}

// fill sets each zero part of dst to a copy of src's.
func fill(dst, src reflect.Value) {
	switch {
	case src.IsZero():
	case dst.IsZero():
		dst.Set(clone(src))
	case dst.Kind() == reflect.Struct:
		for i := range dst.NumField() {
			if dst.Type().Field(i).IsExported() {
				fill(dst.Field(i), src.Field(i))
			}
		}
	case dst.Kind() == reflect.Pointer && dst.Elem().Kind() == reflect.Struct:
		fill(dst.Elem(), src.Elem())
	}
}

// clone copies v deep enough that a route and its defaults share no list
// or pointer.
func clone(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Slice:
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		return c
	case reflect.Pointer:
		c := reflect.New(v.Type().Elem())
		c.Elem().Set(clone(v.Elem()))
		return c
	}
	return v
}

func setZero[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

func ptr[T any](v T) *T { return &v }
