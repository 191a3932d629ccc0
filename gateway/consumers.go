package gateway

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// recountWait bounds the wait for a fresh look at a route's queues before
// a call fails for want of a consumer.
const recountWait = 250 * time.Millisecond

// answerTrust is how long a reply to one of a route's calls outweighs a
// count of no consumer on its queues: a count can lag behind a failover
// (docs/errors.md, "No consumer"), a reply cannot.
const answerTrust = time.Second

// idle returns the error of an rpc call to r when every queue of r is known
// to have no consumer, nil otherwise — also when a queue's count is not
// known (the route then behaves as if nothing were watched), and when a
// reply to one of r's calls came back within answerTrust: a worker that
// answers is there, whatever a lagging count says. Counts are looked at
// periodically: before it fails the call, idle has them looked at again,
// so a worker that has just attached is not missed. Events are published
// whatever the consumers: they wait in their queue.
func (g *Gateway) idle(ctx context.Context, r *Route) error {
	if g.consumers == nil || r.Pattern != PatternRPC || len(r.Queues) == 0 || !g.noConsumer(r) || g.answeredLately(r) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, recountWait)
	g.consumers.Recount(ctx)
	cancel()
	if !g.noConsumer(r) || g.answeredLately(r) {
		return nil
	}
	g.stats(r.Method).noConsumer.Add(1)
	what := "queue " + r.Queues[0]
	if len(r.Queues) > 1 {
		what = "queues " + strings.Join(r.Queues, ", ")
	}
	return fmt.Errorf("%s: %w: %w", r.Method, ErrUnavailable, noConsumerError(what))
}

// answeredLately reports whether a reply to a call of r came back within
// answerTrust.
func (g *Gateway) answeredLately(r *Route) bool {
	return r.answeredSince(time.Now().Add(-answerTrust))
}

// noConsumerError is ErrNoConsumer naming the queues that have none, in
// figway's own words: callers read it whole (docs/errors.md, "No
// consumer"), where other failures of the broker path show only their
// sentinels' words (see callerMessage).
type noConsumerError string

func (e noConsumerError) Error() string { return ErrNoConsumer.Error() + " on " + string(e) }
func (e noConsumerError) Unwrap() error { return ErrNoConsumer }

// noConsumer reports whether every queue of r is known to have no
// consumer.
func (g *Gateway) noConsumer(r *Route) bool {
	for _, q := range r.Queues {
		if n, known := g.consumers.Consumers(q); !known || n > 0 {
			return false
		}
	}
	return true
}

// RouteConsumers returns the number of consumers of the queues of method's
// route, summed, and whether it is known: the route has queues and every
// one's count is known.
func (g *Gateway) RouteConsumers(method string) (n int, known bool) {
	r := g.table.Load().Lookup(method)
	if r == nil || g.consumers == nil || len(r.Queues) == 0 {
		return 0, false
	}
	for _, q := range r.Queues {
		c, ok := g.consumers.Consumers(q)
		if !ok {
			return 0, false
		}
		n += c
	}
	return n, true
}
