package amqp

import (
	"fmt"
	"time"

	"github.com/figway/figway/gateway"
)

// A stuck channel takes publishes and confirms none of them, while other
// channels of the same connection publishing to the same destination are
// confirmed: on RabbitMQ 3.10, a channel that first published to a quorum
// queue while its leader was on a node cut off by a network partition
// keeps sending to that leader after the rest of the cluster elected
// another (docs/operations.md, "A partitioned node"). Its publishes are
// neither confirmed nor nacked — a nack came every 7 s or so — and a
// channel opened after the election is confirmed at once. The connection
// lives, so neither the heartbeats nor the stall watch (stall.go) see it.
//
// So each lane watches its own oldest unconfirmed publish (its head:
// amqp091-go hands confirms over in publish order, so that is the one
// after the last confirmed):
//
//   - stalled: no confirm or nack has come on the lane for StallTimeout,
//     while its head waited that long, on a connection that the stall
//     watch does not judge (the one made after a node was left as
//     stalled, or in its first seconds after a lost one): the lane is
//     renewed (renew.go). A fresh channel takes new calls — a probe that
//     works once the queue does — and the calls on the old one keep
//     waiting there. (Where the stall watch judges, a connection whose
//     lanes all stall is left whole.)
//   - overtaken: a publish to the head's destination (exchange and routing
//     key) made after the head, on another lane of the session, has been
//     acked. Publishes to one destination are confirmed in about the order
//     they were made whatever their channel, once its queue works: while
//     such acks keep coming (the last within StallTimeout/2), the head is
//     suspect, new calls avoid its lane, and the lane is renewed. If the
//     head is still unconfirmed StallTimeout after it was first seen
//     overtaken, and such acks still come, the lane is abandoned as
//     stuck: it dies, every call
//     on it fails UNAVAILABLE, "channel lost after publishing: publish
//     not confirmed" (gateway.ErrNotConfirmed: a `retry: idempotent` route
//     publishes it again, up to three times for this cause; an event is
//     published again on another lane), and its channel is closed
//     (figway_broker_channels_stuck_total).
//
// Publishes to different destinations may be confirmed in any order, and
// a queue electing a leader (3 s and more in a rolling restart) holds the
// confirms of every channel alike: neither makes a lane stuck. A renewal
// fails no call.

// errStuck is why a lane abandoned as stuck died: its calls fail with it,
// and with ErrUnavailable and ErrChannelLost (lane.lost).
var errStuck = fmt.Errorf("%w: channel stuck: later publishes to the same destination were confirmed on another channel", gateway.ErrNotConfirmed)

// dest is where a publish goes: an exchange and a routing key.
type dest struct{ exchange, key string }

// headLook is what a lane saw of its head at its last look.
type headLook struct {
	tag uint64
	// overtaken is when the head was first seen overtaken, zero while it
	// was not.
	overtaken time.Time
}

// look checks the lane's head, at now, against bound (StallTimeout). It
// renews a stalled or overtaken lane, marks an overtaken one suspect, and
// returns errStuck when the lane must be abandoned. Only the lane's
// goroutine calls it.
func (l *lane) look(now time.Time, bound time.Duration) error {
	l.mu.Lock()
	head := l.unconfirmed[l.through+1]
	var d dest
	var sent time.Time
	if head != nil {
		d, sent = dest{head.exchange, head.key}, head.sentAt
	}
	waiting := len(l.unconfirmed)
	l.mu.Unlock()
	if head == nil || l.s.blocked.Load() {
		l.clearSuspect()
		return nil
	}
	if l.head.tag != l.through+1 {
		l.head = headLook{tag: l.through + 1}
	}
	stalled := now.Sub(later(sent, l.lastConfirm)) >= stalledWait(bound, l.renewals)
	acked := l.s.ackedAfter(l, d, sent)
	if acked.IsZero() {
		l.head.overtaken = time.Time{}
		l.suspect.Store(false)
		if stalled && !l.s.judged.Load() {
			l.renewStuck()
		}
		return nil
	}
	if l.head.overtaken.IsZero() {
		l.head.overtaken = now
		return nil
	}
	// Seen overtaken twice: no longer a matter of which lane's goroutine
	// ran first. But only while the destination is being confirmed now:
	// when a partition cuts the node off, publishes made on one channel
	// after another's may be among the last the queue committed, and
	// nothing is confirmed after them — the stall watch's business.
	if now.Sub(acked) >= bound/2 {
		return nil
	}
	l.suspect.Store(true)
	l.renewStuck()
	if over := now.Sub(l.head.overtaken); over < bound {
		return nil
	}
	l.c.stuck.Add(1)
	l.c.log.Warn("AMQP channel stuck: a publish went unconfirmed while later ones to the same destination were confirmed; abandoning it",
		"broker", l.s.node, "exchange", d.exchange, "routing_key", d.key, "waiting", waiting,
		"for", now.Sub(sent).Round(time.Millisecond))
	return errStuck
}

// clearSuspect forgets what the lane saw of its head.
func (l *lane) clearSuspect() {
	l.head = headLook{}
	l.suspect.Store(false)
}

// renewStuck asks the session to renew l, once; if the session is busy
// renewing others, the next look asks again.
func (l *lane) renewStuck() {
	if !l.retiring.CompareAndSwap(false, true) {
		return
	}
	l.stalledRenewal.Store(true)
	select {
	case l.s.renew <- l:
	default:
		l.stalledRenewal.Store(false)
		l.retiring.Store(false)
	}
}

// lastAck is what a lane knows of its last acked publish to a
// destination: when it was made, and when its ack came.
type lastAck struct{ sent, at time.Time }

// ackedAfter returns when the last ack came, on a lane of the session other
// than l, of a publish to d made after sent; zero if none did.
func (s *session) ackedAfter(l *lane, d dest, sent time.Time) time.Time {
	var at time.Time
	for i := range s.lanes {
		o := s.lanes[i].Load()
		if o == nil || o == l {
			continue
		}
		o.mu.Lock()
		a := o.acks[d]
		o.mu.Unlock()
		if a.sent.After(sent) {
			at = later(at, a.at)
		}
	}
	return at
}

// stalledWait returns how long a lane that is renewal number n of its slot
// waits for a confirm before it is renewed as stalled: bound, doubling
// once the slot has been renewed renewSteady times without an ack in
// between, up to 8 times bound — a queue that stays unavailable (no
// quorum) is not probed with a fresh channel every few seconds for long.
func stalledWait(bound time.Duration, n int) time.Duration {
	return bound << min(max(n-renewSteady, 0), 3)
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
