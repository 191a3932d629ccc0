// Package worker holds the Go SDK's tests against a real broker: workers
// (the worker module's package, as a user's program imports it) on a
// private RabbitMQ node (internal/testing/rabbitmq), with requests
// published as figway publishes them — replies, acks, poison requests,
// reconnects, shutdown, frame_max, tracing — and BenchmarkRequest. They
// live here, in figway's main module, so that the worker module needs
// none of figway's test machinery (docs/development.md, "Modules"). The
// package has no code of its own.
package worker
