// Package config loads figway's routes file: the YAML that says which gRPC
// methods are bridged to RabbitMQ and how, together with the protobuf
// descriptor sets that describe the API.
//
// # One load path
//
// [Load] (or [Parse], on bytes already read) is the only way to a
// [Config]. It parses the YAML, reads the descriptor sets, applies the
// defaults documented on each field, and validates. A Config it returns
// is complete: every route has its timeout, limits, breaker and resolved
// method descriptor, so no other package needs to know a default.
//
// # Errors
//
// A load reports every problem of the file at once, so that
// `figway validate` can list them all: the error joins, with
// [errors.Join], one [*FieldError] per problem, in the order of the file.
// Each names the YAML path of the value and, where it is known, its line:
//
//	routes[2].timout (line 14): unknown field (did you mean "timeout"?)
//	routes[0].method (line 9): orders.v1.OrderService/GetOrdr not found in descriptors (did you mean orders.v1.OrderService/GetOrder?)
//
// Unknown keys, values of the wrong type, bad durations (Go syntax:
// 1500ms, 2s), unknown enum values, methods missing from the descriptors,
// streaming methods routed to the broker and impossible combinations of
// settings are all errors. A YAML syntax error is the one problem that
// stops the load before the others are looked for.
//
// No message repeats a broker password: URLs are shown through [Redact].
//
// # YAML
//
// Keys are snake_case, as in docs/configuration.md. A key with
// a null value ("timeout:") counts as absent. Anchors, aliases and merge
// keys (<<: *base) work as in YAML 1.1; duplicate keys are errors.
// Top-level keys that start with "x-" are ignored, as in Compose files, to
// hold what routes merge:
//
//	x-rpc: &rpc {exchange: orders, timeout: 2s}
//	routes:
//	  - {<<: *rpc, method: orders.v1.OrderService/GetOrder, routing_key: orders.get}
package config
