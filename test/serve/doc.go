// Package serve holds end-to-end tests of figway as operators run it:
// `figway serve` in-process and as a process on a private RabbitMQ node —
// readiness and health following the broker, exact metrics, reflection,
// reloads under load, SIGHUP and SIGTERM, TLS on every side, CORS, and no
// output that shows a broker password.
package serve
