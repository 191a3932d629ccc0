package config

import (
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

// GatewayRoutes returns the gateway's RouteSpec of each route (with
// verifiers that refuse every token, as [Config.Table]'s).
func (c *Config) GatewayRoutes() []gateway.RouteSpec { return c.gatewayRoutes(nil) }

// gatewayRoutes returns the RouteSpec of each route: the settings as
// decoded, and what the gateway takes from elsewhere in the file — the
// limits of server, the queues of the topology, the key sets of auth — or
// in its own words (wire.cloudevents).
func (c *Config) gatewayRoutes(keys *auth.Keys) []gateway.RouteSpec {
	specs := make([]gateway.RouteSpec, len(c.Routes))
	for i := range c.Routes {
		r := &c.Routes[i]
		specs[i] = r.RouteSpec
		specs[i].ForwardLimits = gateway.HeaderLimits{Value: c.Server.MaxForwardedValueBytes, Total: c.Server.MaxForwardedBytes}
		specs[i].CloudEvents = r.Wire.CloudEvents == CloudEventsAlways
		specs[i].Queues = c.Queues(r)
		specs[i].Auth = gatewayAuth(r.Auth, keys)
		if r.RateLimit != nil {
			rl := *r.RateLimit
			specs[i].RateLimit = &rl
		}
	}
	return specs
}

// Queues returns the queues whose consumers serve route r, as the AMQP
// adapter's [amqp.Topology.ServingQueues] finds them in c's topology; nil
// for a route that publishes nothing.
func (c *Config) Queues(r *Route) []string {
	if !r.Publishes() {
		return nil
	}
	return c.Topology.ServingQueues(r.Queue, r.Exchange, r.RoutingKey)
}
