// Package edge holds end-to-end tests of the checks at figway's edge:
// JWT authentication against a real key set endpoint that rotates its
// keys and misbehaves, claims handed to the worker and to legacy, hostile
// tokens each refused quickly and alone, and rate limits per caller — over
// real gRPC and REST clients, a worker on a private RabbitMQ node and the
// legacy services, with figway in-process.
package edge
