// Package worker is the Go SDK for the other side of figway's bridge: it
// consumes the requests figway publishes to RabbitMQ, calls a typed handler
// by method name and publishes the reply figway waits for. A team migrates a
// method by writing its handler here and pointing a figway route at the
// worker's queue; callers notice nothing.
//
//	w := worker.New(worker.Config{URL: url, Queue: "orders.requests"})
//	worker.Handle(w, "orders.v1.OrderService/GetOrder", getOrder)
//	err := w.Run(ctx)
//
// The protocol is figway's (docs/wire-protocol.md, package wire): a worker in another
// language can be written from that alone.
//
// # Handlers
//
// A handler is a func(ctx, *Req) (*Resp, error) over generated message
// types, registered with [Handle] under the full method name. Requests are
// dispatched on the AMQP type property. The body is decoded according to
// content_type — application/protobuf or application/json (protojson,
// unknown fields ignored) — and the response is encoded the same way.
//
// The handler's context carries the request's deadline (the figway-deadline
// header) and gives access to the forwarded metadata ([Metadata]), the W3C
// trace context ([TraceContext]) and the event id ([EventID]).
//
// # Errors
//
// A handler's error becomes the reply's status headers (figway-status,
// figway-message, figway-details), which figway turns back into a gRPC
// status or an HTTP code:
//
//   - a status error from google.golang.org/grpc/status keeps its code,
//     message and details: return status.Error(codes.NotFound, "...");
//   - a context error becomes DEADLINE_EXCEEDED or CANCELED;
//   - any other error is UNKNOWN, with the error's text as the message;
//   - a panic is recovered, logged with its stack and answered INTERNAL;
//     the worker goes on serving.
//
// The worker answers by itself UNIMPLEMENTED to a method without a handler
// and INVALID_ARGUMENT to a body that does not decode or a content type it
// does not know; the handler is not called. An error reply has no body.
//
// # Deadlines
//
// figway stops waiting at the call's deadline, and gives the message the
// same time to live in the queue. A request whose deadline has already
// passed when the worker takes it is acked and dropped without running its
// handler (counted in [Stats].Expired): nobody would read the reply.
//
// # Events
//
// A request without reply_to is an event (a route with pattern: event):
// figway answered its caller once the broker had it. The handler runs as
// usual; on success the event is acked, on error it is rejected without
// requeue — dead-lettered if the queue has a dead-letter exchange — and
// logged.
//
// # Delivery guarantees
//
// Delivery is at least once. A request is acked only after its reply has
// been published, on the channel that delivered it. If the connection is
// lost before the ack, the broker delivers the request again, to this or
// another worker, and the handler runs again; figway drops the second reply
// of a call it has already answered. Handlers with side effects should
// therefore be idempotent: [EventID] is the same on every delivery of a
// request and makes a natural key.
//
// A busy worker gathers its acks: the ack of a request whose reply is out
// may wait up to [Config.AckWindow] (5 ms by default) to go out with its
// neighbours' as one basic.ack with multiple set, covering the contiguous
// run of finished deliveries. A slow request never holds a finished one's
// ack longer than the window; a held ack goes out at once when nothing
// else runs, and at shutdown. If the worker dies meanwhile, those requests
// are redelivered, as every unacked request is.
//
// # Poison requests
//
// A request whose handler crashes the process is handed back by the broker
// when the connection closes, and would crash every worker it reaches. On
// a quorum queue, which counts deliveries (x-delivery-count), a request
// delivered more than [Config.MaxDeliveries] times (3 by default) is not
// run: it is answered INTERNAL "poison request …" and rejected without
// requeue — dead-lettered if the queue has a dead-letter exchange — and
// counted in [Stats].Poisoned. The call fails alone; the pool serves on.
//
// The queue counts a delivery against every request a dying worker held,
// not only the one that killed it. So that the others are not refused in
// turn, a redelivered request is quarantined: the worker narrows its
// prefetch to 1 and runs it only when nothing else of its own runs or
// waits for an ack, one at a time, handing the other redelivered requests
// it holds back to the queue as copies that carry their count first (see
// docs/wire-protocol.md, "Poison requests"). A new connection starts
// narrow too, for a quarter of a second, and the prefetch widens again
// once no redelivered request has come for 2 s. A worker that lost its
// connection k times in the last minute takes up to k off each request's
// count: those charges may be its own connections', not crashes'. A
// request so counted runs at once like a fresh one, and is not refused as
// poison for them. Those another worker
// handed back run one at a time.
//
// # Concurrency and flow control
//
// At most [Config.Concurrency] handlers run at once; the broker sends up to
// [Config.Prefetch] unacknowledged requests ahead. Run any number of
// workers on one queue to scale out: the broker spreads requests over them.
//
// # Connection loss and shutdown
//
// [Worker.Run] owns the connection. When it is lost, the handlers still
// running for it have their contexts cancelled (their requests will be
// redelivered), and Run reconnects with capped, jittered backoff, declares
// the topology again ([Config.Declare]) and resumes consuming.
//
// Cancelling Run's context stops consumption at once, gives running handlers
// [Config.ShutdownGrace] to reply, then cancels them and closes the
// connection; every request not answered goes back to the queue.
//
// # Logging
//
// The worker logs with [log/slog] under the keys method, correlation_id,
// event_id, code and queue. It never logs the broker URL, which holds the
// password.
package worker
