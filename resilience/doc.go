// Package resilience holds the policies figway applies to every route: the
// deadline of a call, the bulkhead that bounds calls in flight, the circuit
// breaker that stops publishing to a route that keeps failing, and the
// backoff between reconnection attempts. It does no I/O; the gateway and
// the adapters apply it.
package resilience
