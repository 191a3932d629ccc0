// Package faulttest holds end-to-end fault tests — the gateway, the AMQP
// adapter and a private RabbitMQ node together, so that what the breaker
// and the reconnection do is proven on one real path — and the [Worker]
// that fault tests elsewhere share: a service that survives broker faults.
package faulttest
