// Package breaker holds end-to-end tests of what a route's breaker counts
// under broker faults — the gateway, the AMQP adapter and a private
// RabbitMQ node together, so that what the breaker and the reconnection do
// is proven on one real path: a connection blip, a killed broker, a
// caller's deadline.
package breaker
