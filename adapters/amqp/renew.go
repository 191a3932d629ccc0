package amqp

import (
	"context"
	"time"
)

// Renewing a lane whose publishes a queue keeps nacking.
//
// RabbitMQ 3.10 keeps, per channel and quorum queue, the member it takes
// for the queue's leader. A channel that first publishes to a quorum queue
// while the queue's leader is on a node that has just died — figway's own
// node, in the layout figway's topology gives, since a queue's leader goes
// to the node that declared it — has every later publish to that queue
// nacked, long after the other members elected a new leader: 1,290 nacks
// over 30 s and not one ack, measured on 3.10.8, where a channel opened
// after the election had its first publish acked at once. So a lane whose
// publishes to one destination (exchange and routing key) have met nothing
// but nacks for renewAfter is renewed: a fresh channel takes its place for
// new calls, and the old one is closed once the calls on it have ended
// (their replies and confirms still come back on it). A fresh channel
// opened before the election ended is stuck too, and is renewed in turn.
// RabbitMQ 4.0 holds such publishes until the election ends instead.

// Renewal spacing: a lane is renewed after renewAfter of nacks; once a slot
// has been renewed renewSteady times without an ack in between (a queue at
// its length limit with x-overflow reject-publish refuses every publish,
// and no new channel changes that) the wait doubles each time, up to
// renewMax.
const (
	renewAfter  = 250 * time.Millisecond
	renewSteady = 8
	renewMax    = 5 * time.Second
)

// retireWait bounds how long a renewed lane stays open for the calls still
// on it; a call waiting longer (a route timeout over five minutes) fails
// as on a lost channel.
const retireWait = 5 * time.Minute

// renewWait returns the nack run after which a lane that is renewal
// number n of its slot (0 for a first lane) is renewed.
func renewWait(n int) time.Duration {
	d := renewAfter
	for i := renewSteady; i < n && d < renewMax; i++ {
		d *= 2
	}
	return min(d, renewMax)
}

// noteConfirm records the outcome of cl's publish for renewal, and asks
// the session to renew the lane when the publishes to cl's destination
// have been nacked for the lane's renewal wait. l.mu is held.
func (l *lane) noteConfirm(cl *call, ack bool) {
	if ack {
		l.acked = true
		if len(l.nacked) > 0 {
			delete(l.nacked, cl.exchange+"\x00"+cl.key)
		}
		return
	}
	dest, now := cl.exchange+"\x00"+cl.key, time.Now()
	first, ok := l.nacked[dest]
	if !ok {
		l.nacked[dest] = now
		return
	}
	if now.Sub(first) >= renewWait(l.renewals) && l.retiring.CompareAndSwap(false, true) {
		select {
		case l.s.renew <- l:
		default: // the session is busy renewing others; the next nack asks again
			l.retiring.Store(false)
		}
	}
}

// slot returns the index of l among the session's lanes, or -1 when l was
// replaced.
func (s *session) slot(l *lane) int {
	for i := range s.lanes {
		if s.lanes[i].Load() == l {
			return i
		}
	}
	return -1
}

// nextRenewals returns the renewal count of the lane that replaces l.
func (l *lane) nextRenewals() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.acked {
		return 1
	}
	return l.renewals + 1
}

// retire closes l, renewed, once no call is on it, or after retireWait, or
// returns when ctx ends (the session then closes the connection, and with
// it l's channel).
func (l *lane) retire(ctx context.Context) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	give := time.Now().Add(retireWait)
	for l.users.Load() > 0 && time.Now().Before(give) {
		select {
		case <-ctx.Done():
			return
		case <-l.dead:
			return
		case <-tick.C:
		}
	}
	l.closeChannel()
}

// logRenewed logs the renewal of l, in slot i.
func (c *Client) logRenewed(l *lane, i int) {
	if l.stalledRenewal.Load() {
		c.log.Info("renewed an AMQP channel whose publishes went unconfirmed", "lane", i, "renewals", l.renewals+1)
		return
	}
	c.log.Info("renewed an AMQP channel whose publishes a queue kept nacking", "lane", i, "renewals", l.renewals+1)
}

// closeChannel closes l's channel, under the write token as every use of
// it. A lane abandoned as stuck has died already: its calls have failed.
func (l *lane) closeChannel() {
	l.write <- struct{}{}
	l.ch.Close()
	<-l.write
}
