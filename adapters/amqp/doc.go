// Package amqp is figway's RabbitMQ adapter: it publishes the gateway's
// requests and brings back their replies, implementing [gateway.Publisher].
//
// # Shape
//
// A [Client] owns one connection at a time, supervised by [Client.Run]:
// dial (trying each URL in turn), declare the topology, open the lanes, serve
// until the connection is lost, then back off with jitter and start again.
// A lane is one AMQP channel in confirm mode. amqp091-go channels are not
// safe for concurrent use: a caller publishes its request (mandatory set)
// from its own goroutine while it holds the lane's write token, so no
// goroutine hand-off sits on the hot path, and the lane's one goroutine
// reads the publisher confirms, returns and — in direct reply-to mode — the
// replies of amq.rabbitmq.reply-to, consumed on the same channel before the
// first publish as RabbitMQ requires. In queue mode one exclusive, server-named
// reply queue per connection replaces the per-lane consumers; in direct mode
// such a queue stands in while the node is still booting and drops direct
// replies (directcheck.go). The
// connection's writes are gathered (internal/batchconn): a publish copies
// its frames into a buffer that one goroutine writes out, so the lanes'
// publishes share write system calls when they come together.
//
// # Correlation
//
// Each rpc call registers a 128-bit random correlation id in the client's
// pending map and removes it when it ends, whatever the way: reply, deadline,
// cancellation, or failure. A reply whose id matches nothing (late,
// duplicate, forged) is dropped and counted in [Stats.UnmatchedReplies]; it
// never reaches another caller.
//
// # Failing fast
//
// A call never waits out its deadline for something the client already
// knows: a returned (unroutable) message, a nack, a closed channel or
// connection, or a connection blocked by a broker alarm all end the call at
// once with an error wrapping [gateway.ErrUnavailable]. Direct reply-to
// replies are not stored by the broker, so when a lane's channel dies every
// call waiting on it fails, and the lane is reopened. When the broker sends
// connection.blocked, every call waiting on the connection fails too, and
// no lane writes into the socket the broker stopped reading. A silent
// (black-holed) connection is noticed by heartbeats, within 1.5 intervals.
//
// The errors say whether a request may have reached the broker:
// [gateway.ErrNotPublished] when it provably did not,
// [gateway.ErrChannelLost] when it was written — handed to the connection's
// writer — before its channel or connection died. The gateway retries on that basis; the client itself
// publishes an event once more, with the same message id, when its channel
// died under a live connection before the confirm ([Client.Publish]).
package amqp
