// Package gateway is figway's core: the route table built from the routes
// file, and the dispatch of one call through a route to RabbitMQ and back.
//
// The ingress adapters (gRPC, REST) turn what arrives on the wire into a
// [Call], take the call's [Route] once ([Gateway.Route]; REST from its
// binding) and hand both to [Gateway.InvokeRoute], or [Gateway.StreamRoute]
// for a server-streaming method; the gateway applies the route's
// resilience policies (bulkhead, deadline, circuit
// breaker, a retry where it is safe), renders the request per the wire
// protocol (package wire) and hands it to a [Publisher], the port the AMQP
// adapter implements. Every failure comes back as an error
// that [Status] maps to one gRPC status; each ingress maps that status to its
// own protocol once, at its edge.
//
// # Concurrency
//
// A Gateway is safe for concurrent use. Its route table is swapped
// atomically ([Gateway.SetTable]): a call runs to its end on the table it
// started with.
package gateway
