package worker

import (
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// defaultAckWindow is [Config.AckWindow]'s default.
const defaultAckWindow = 5 * time.Millisecond

// maxGathered is how many finished requests' acks a session holds before
// it sends what it can at once, without waiting for the window to end.
const maxGathered = 64

// maxHeld bounds the finished deliveries a session keeps track of above
// base. Past it — thousands of requests finishing in scrambled order, as
// when a burst of slow requests ends at once — acks go out alone, at once,
// as if gathering were off, until the run catches up.
const maxHeld = 4 * maxGathered

// acks gathers the acknowledgements of one session's channel. A busy
// worker finishes requests faster than it needs to tell the broker: rather
// than one basic.ack per request, it sends one with multiple set for the
// contiguous run of finished deliveries, which the broker settles in one
// go. The broker numbers a channel's deliveries 1, 2, 3…, so the run is
// every tag above base up to the first one still running; a finished
// request held behind a slow neighbour is acked on its own once it has
// waited the window. A held ack is sent at most window after its request
// finished, at once when no other request of the session is running, and
// when the session drains at shutdown. A request whose ack was held when
// the worker died is redelivered, as an unacked one always is
// (at-least-once; docs/wire-protocol.md).
//
// Every method runs with the session's mu held: ch is used under it.
type acks struct {
	ch     acker
	window time.Duration  // if ≤ 0, every ack goes out at once, alone
	sent   *atomic.Uint64 // basic.ack frames sent, for Stats

	// base is the highest tag such that every delivery up to it is
	// settled on the wire (acked, rejected).
	base uint64
	// held are the finished deliveries above base, by tag: when they
	// finished, and whether their ack (or reject) has gone out alone.
	held   map[uint64]heldAck
	unsent int // entries of held whose ack has not gone out
	timer  *time.Timer
	// flushAt is when timer fires; zero when it is stopped.
	flushAt time.Time
}

type heldAck struct {
	at   time.Time
	sent bool
}

// acker is the part of an *amqp.Channel that acks use.
type acker interface {
	Ack(tag uint64, multiple bool) error
	Reject(tag uint64, requeue bool) error
}

var _ acker = (*amqp.Channel)(nil)

func newAcks(ch acker, window time.Duration, sent *atomic.Uint64) *acks {
	return &acks{ch: ch, window: window, sent: sent, held: make(map[uint64]heldAck)}
}

// finish records that delivery tag is done and may be acked. alone says
// that no other request of the session is running: nothing would join a
// held ack soon, so everything held goes out now. arm starts the timer
// that sends held acks once the window ends; finish calls it when it
// holds one. finish costs O(1) but when alone: the held acks are only
// scanned by flush, when the window ends, so that a long run held behind
// a slow request does not make every finish walk it.
func (a *acks) finish(tag uint64, now time.Time, alone bool, arm func(time.Duration) *time.Timer) error {
	if a.window <= 0 {
		a.sent.Add(1)
		return a.ch.Ack(tag, false)
	}
	if len(a.held) >= maxHeld {
		a.sent.Add(1)
		if err := a.ch.Ack(tag, false); err != nil {
			return err
		}
		a.held[tag] = heldAck{at: now, sent: true}
		return a.ackRun()
	}
	a.held[tag] = heldAck{at: now}
	a.unsent++
	switch {
	case alone:
		return a.flush(now, true, arm)
	case a.unsent >= maxGathered:
		if err := a.ackRun(); err != nil {
			return err
		}
	}
	if a.unsent > 0 && a.flushAt.IsZero() {
		a.schedule(now.Add(a.window), now, arm)
	}
	return nil
}

// reject rejects delivery tag without requeue, now: a reject cannot join
// an ack.
func (a *acks) reject(tag uint64) error {
	if err := a.ch.Reject(tag, false); err != nil {
		return err
	}
	if a.window > 0 {
		a.held[tag] = heldAck{sent: true}
	}
	return nil
}

// flush sends the acks that are due: the contiguous run above base in one
// ack with multiple set, then, alone, every held ack that has waited the
// window — or every held ack at all, with all set. It schedules the next
// flush while acks stay held.
func (a *acks) flush(now time.Time, all bool, arm func(time.Duration) *time.Timer) error {
	if err := a.ackRun(); err != nil {
		return err
	}
	var oldest time.Time
	for tag, h := range a.held {
		if h.sent {
			continue
		}
		if all || now.Sub(h.at) >= a.window {
			a.sent.Add(1)
			if err := a.ch.Ack(tag, false); err != nil {
				return err
			}
			a.held[tag] = heldAck{at: h.at, sent: true}
			a.unsent--
			continue
		}
		if oldest.IsZero() || h.at.Before(oldest) {
			oldest = h.at
		}
	}
	a.flushAt = time.Time{}
	if a.unsent > 0 {
		a.schedule(oldest.Add(a.window), now, arm)
	}
	return nil
}

// ackRun acks the contiguous run of finished deliveries above base with
// one ack, multiple set. Such an ack settles every outstanding delivery up
// to its tag, which must itself be outstanding — not one acked alone
// already, or the broker closes the channel.
func (a *acks) ackRun() error {
	var last uint64
	for {
		h, ok := a.held[a.base+1]
		if !ok {
			break
		}
		delete(a.held, a.base+1)
		a.base++
		if !h.sent {
			last = a.base
			a.unsent--
		}
	}
	if last == 0 {
		return nil
	}
	a.sent.Add(1)
	return a.ch.Ack(last, true)
}

func (a *acks) schedule(at, now time.Time, arm func(time.Duration) *time.Timer) {
	a.flushAt = at
	if a.timer == nil {
		a.timer = arm(at.Sub(now))
		return
	}
	a.timer.Reset(at.Sub(now))
}

// stop stops the timer; a flush it already started finds the session
// ended.
func (a *acks) stop() {
	if a.timer != nil {
		a.timer.Stop()
	}
	a.flushAt = time.Time{}
}
