package worker

import "sync/atomic"

// Stats counts what a [Worker] did since [New]. Read it with
// [Worker.Stats]; export it to a metrics system by polling.
type Stats struct {
	// Received counts deliveries taken from the queue, redeliveries
	// included.
	Received uint64
	// Replied counts replies (OK or not) published; their requests' acks
	// are gathered ([Config.AckWindow]).
	Replied uint64
	// Events counts events (requests without reply_to) handled and acked.
	Events uint64
	// Rejected counts events whose handler failed, rejected without
	// requeue: dead-lettered if the queue has a dead-letter exchange.
	Rejected uint64
	// Expired counts requests dropped without running because their
	// figway-deadline had passed: figway had given up on them.
	Expired uint64
	// Panics counts handler panics, each answered with INTERNAL.
	Panics uint64
	// ShadowsSkipped counts shadow copies not run because their method's
	// handler was registered with SkipShadows.
	ShadowsSkipped uint64
	// Trimmed counts replies whose headers would not have fitted the
	// broker's frame_max, trimmed before publishing (see amqpwire.FitReply).
	Trimmed uint64
	// RepliesDropped counts requests acked without their reply because a
	// reply to the same direct reply-to address had made the broker close
	// the worker's connection: the caller's channel is gone (its node
	// died), and RabbitMQ 3.10 crashes the replying channel on such a
	// reply. See docs/operations.md, "Running against a cluster".
	RepliesDropped uint64
	// Poisoned counts poison requests: delivered more than
	// [Config.MaxDeliveries] times, answered INTERNAL without running and
	// rejected.
	Poisoned uint64
	// SetAside counts redelivered requests a worker held beside the one
	// it ran alone, handed back to the queue as copies so that they would
	// not be charged if that one crashed the worker (docs/wire-protocol.md,
	// "Poison requests").
	SetAside uint64
	// Connects counts the times the worker connected and started
	// consuming, the first included.
	Connects uint64
	// Acks counts the basic.ack frames sent: fewer than the requests
	// acked when acks are gathered, one ack with multiple set settling
	// several requests.
	Acks uint64
	// Cancelled counts the handlers whose context ended because figway
	// said their caller went away (docs/wire-protocol.md, "Cancellation").
	Cancelled uint64
}

type counters struct {
	received, replied, events, rejected, expired, panics, trimmed, connects, acks atomic.Uint64
	shadowsSkipped, repliesDropped, poisoned, cancelled, setAside                 atomic.Uint64
}

// Stats returns the worker's counters. It is safe to call at any time.
func (w *Worker) Stats() Stats {
	c := &w.stats
	return Stats{
		Received:       c.received.Load(),
		Replied:        c.replied.Load(),
		Events:         c.events.Load(),
		Rejected:       c.rejected.Load(),
		Expired:        c.expired.Load(),
		Panics:         c.panics.Load(),
		Connects:       c.connects.Load(),
		Acks:           c.acks.Load(),
		ShadowsSkipped: c.shadowsSkipped.Load(),
		Trimmed:        c.trimmed.Load(),
		RepliesDropped: c.repliesDropped.Load(),
		Poisoned:       c.poisoned.Load(),
		SetAside:       c.setAside.Load(),
		Cancelled:      c.cancelled.Load(),
	}
}
