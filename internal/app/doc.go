// Package app wires one figway: the route table from the routes file, the
// AMQP client, the gateway, the legacy upstreams, the async operations,
// the gRPC and REST ingresses, the admin listener (metrics, health,
// readiness, the status page, profiles) and the reloader.
//
// [New] builds an [App] from a loaded routes file; [App.Run] opens the
// listeners, serves until its context is cancelled and shuts down in order
// (docs/operations.md); [App.Reload] loads the routes file again, as
// SIGHUP does. cmd/figway is only flags and signals around it, and tests
// run the whole figway in-process with it.
package app
