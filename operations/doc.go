// Package operations keeps figway's asynchronous operations: the REST calls
// of async routes that outlived their route's async.after and were answered
// 202 Accepted, to be polled until their reply comes (docs/rest.md, "Long
// calls").
//
// # Where operations live
//
// A [Store] holds the operations in memory, bounded in count and bytes. It
// is fed by a [Log]: every figway appends its operations' records (started,
// done, deleted) to the log and reads every record back, its own and the
// other figways', so that any figway answers any operation. The log of a
// running figway is a RabbitMQ stream (adapters/amqp); a figway that starts
// reads it from as far back as an operation lives, and then tails it.
//
// # Who concludes
//
// The figway that published a call gets its reply and appends the done
// record. When that figway dies first, nobody will: every Store concludes
// such an operation by itself, with UNAVAILABLE, once its deadline has
// passed by a short grace, and a done record that comes later still
// wins.
package operations
