// Package ramp holds the end-to-end tests of the migration autopilot:
// two `figway serve` processes on one RabbitMQ, the SDK worker and the
// demo's legacy service, with a route that ramps every 2s
// (docs/migration.md, "Ramps").
package ramp
