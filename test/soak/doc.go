// Package soak holds figway's soak test: two `figway serve` replicas and
// two Go SDK workers on a private three-node RabbitMQ cluster
// (internal/testing/rabbitmq), under a mixed load — gRPC and REST calls,
// events, async operations, a shadowed route and a canary route — while
// the routes file is reloaded and the nodes are restarted one at a time.
// It checks that no confirmed event is lost, that calls fail only while a
// node restarts, and that the replicas' memory, goroutines and descriptors
// stay flat; docs/operations.md ("Soak") reports a long run's numbers.
//
// `make test` runs it for 2 minutes; `make soak` for 30 (DURATION=
// changes it), through the environment variable FIGWAY_SOAK_DURATION.
// The package has no code of its own: its test gets a test binary, and so
// a time budget and a cluster, of its own.
package soak
