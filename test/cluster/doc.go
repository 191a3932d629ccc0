// Package cluster holds figway's fault tests on a RabbitMQ cluster:
// `figway serve` processes and Go SDK workers on a private three-node
// cluster (internal/testing/rabbitmq), with quorum request queues, while nodes
// are killed -9 and restarted, and replicas of figway stopped under load.
// docs/operations.md ("Running against a cluster") reports what they
// measure. The package has no code of its own: its tests get a test binary,
// and so a time budget, of their own.
package cluster
