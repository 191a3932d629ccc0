package config

import (
	"slices"

	"github.com/figway/figway/auth"
	"github.com/figway/figway/gateway"
)

// Table builds the gateway's route table of c. When prev is not nil, the
// routes that a reload leaves alone keep their bulkheads and breakers, as
// [gateway.NewTable] says. Its routes with auth refuse every token: a
// table that serves calls is [Config.ServingTable]'s.
func (c *Config) Table(prev *gateway.Table) (*gateway.Table, error) {
	return c.ServingTable(prev, nil)
}

// ServingTable is [Config.Table] whose routes with auth verify tokens
// with the key sets of keys.
func (c *Config) ServingTable(prev *gateway.Table, keys *auth.Keys) (*gateway.Table, error) {
	return gateway.NewTable(c.Files, c.gatewayRoutes(keys), prev)
}

// GatewayRoutes translates c.Routes into the gateway's own route type
// (with verifiers that refuse every token, as [Config.Table]'s).
func (c *Config) GatewayRoutes() []gateway.RouteSpec { return c.gatewayRoutes(nil) }

func (c *Config) gatewayRoutes(keys *auth.Keys) []gateway.RouteSpec {
	specs := make([]gateway.RouteSpec, len(c.Routes))
	for i := range c.Routes {
		r := &c.Routes[i]
		specs[i] = gateway.RouteSpec{
			Method:     r.Method,
			Desc:       r.Desc,
			To:         r.To,
			Exchange:   r.Exchange,
			RoutingKey: r.RoutingKey,
			Pattern:    r.Pattern,
			Timeout:    r.Timeout,
			Encoding:   r.Encoding,
			Forward:    slices.Clone(r.ForwardHeaders),
			ForwardLimits: gateway.HeaderLimits{
				Value: c.Server.MaxForwardedValueBytes,
				Total: c.Server.MaxForwardedBytes,
			},
			HTTP:        r.HTTP.gateway(),
			CloudEvents: r.Wire.CloudEvents == CloudEventsAlways,

			ResponseHeaders: slices.Clone(r.ResponseHeaders),
			Fallback:        r.Fallback,
			Shadow:          r.Shadow,
			ShadowPercent:   r.ShadowPercent,
			Compare:         r.Compare,
			IgnoreFields:    slices.Clone(r.IgnoreFields),
			IgnoreMetadata:  slices.Clone(r.IgnoreMetadata),
			Weight:          r.Weight,
			StickyBy:        r.StickyBy,
			PinBy:           r.PinBy,
			MaxInFlight:     r.MaxInFlight,
			Breaker:         r.Breaker,
			Retry:           r.Retry,
			Queues:          c.Queues(r),
			Auth:            gatewayAuth(r.Auth, keys),
		}
		if r.RateLimit != nil {
			rl := *r.RateLimit
			specs[i].RateLimit = &rl
		}
		if r.Async != nil {
			a := gateway.Async(*r.Async)
			specs[i].Async = &a
		}
	}
	return specs
}

// gateway returns the rule with its one verb and path, or nil.
func (h *HTTPRule) gateway() *gateway.HTTPRule {
	if h == nil {
		return nil
	}
	g := &gateway.HTTPRule{Body: h.Body, ResponseBody: h.ResponseBody}
	switch {
	case h.Get != "":
		g.Verb, g.Path = "GET", h.Get
	case h.Put != "":
		g.Verb, g.Path = "PUT", h.Put
	case h.Post != "":
		g.Verb, g.Path = "POST", h.Post
	case h.Delete != "":
		g.Verb, g.Path = "DELETE", h.Delete
	case h.Patch != "":
		g.Verb, g.Path = "PATCH", h.Patch
	case h.Custom != nil:
		g.Verb, g.Path = h.Custom.Kind, h.Custom.Path
	}
	return g
}
