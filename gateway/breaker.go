package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/figway/figway/resilience"
	"github.com/figway/figway/wire"
)

// breakerLog carries the transitions of a table's breakers to the
// gateway's logger. One is shared by a table and every table reloaded from
// it, as the breakers that survive a reload are; the gateway sets its
// logger when it takes the table.
type breakerLog struct {
	log atomic.Pointer[slog.Logger]
	at  sync.Map // route → time.Time of its breaker's last transition
}

// changed logs one transition, once, not per call. It runs under the
// breaker's lock: it only logs.
func (b *breakerLog) changed(route string, from, to resilience.BreakerState) {
	b.at.Store(route, time.Now())
	l := b.log.Load()
	if l == nil {
		return
	}
	level := slog.LevelInfo
	if to == resilience.BreakerOpen {
		level = slog.LevelWarn
	}
	l.Log(context.Background(), level, "circuit breaker "+to.String(), "route", route, "from", from.String())
}

func newBreaker(method string, b Breaker, events *breakerLog) *resilience.Breaker {
	return resilience.NewBreaker(resilience.BreakerSettings{
		OnStateChange:    events.changed,
		Name:             method,
		Failures:         b.Failures,
		OpenFor:          b.OpenFor,
		HalfOpenRequests: b.HalfOpenRequests,
		FailureRatio:     b.FailureRatio,
		Window:           b.Window,
		MinRequests:      b.MinRequests,
	})
}

// breakerError is the answer of a call its route's breaker refused.
func breakerError(r *Route, err error) error {
	if errors.Is(err, resilience.ErrBreakerProbing) {
		return fmt.Errorf("%s: %w: %w: half-open, its %d probes taken", r.Method, ErrUnavailable, ErrBreakerOpen, r.Breaker.HalfOpenRequests)
	}
	return fmt.Errorf("%s: %w: %w", r.Method, ErrUnavailable, ErrBreakerOpen)
}

// breakerOutcome classifies the end of a call for its route's breaker
// (docs/errors.md#circuit-breaker): a failure counts when it says something
// about the route's destination — no reply before the deadline (whoever set
// it), a nack, a return, a reply that does not decode, the service
// replying UNAVAILABLE, INTERNAL or DEADLINE_EXCEEDED. Ignored: what says
// nothing of the route — a worker refusing one request as poison, the
// caller cancelling, and figway's own link to
// the broker failing (not connected, blocked, channel or connection lost,
// shutting down), which fails every route alike and is the connection
// supervisor's business; counting it would turn a reconnect of a few
// milliseconds into open_for of refusals on every busy route. Any other
// status the service chose is a success: it answered, so the route works.
func breakerOutcome(err error) resilience.Outcome {
	if err == nil {
		return resilience.Success
	}
	var re *ReplyError
	if errors.As(err, &re) {
		switch re.Status.Code() {
		case codes.Internal:
			if wire.IsPoisonRefusal(re.Status.Message()) {
				// A worker refused this one request as poison: its own
				// fault, not the route's, and the pool serves on.
				return resilience.Ignored
			}
			return resilience.Failure
		case codes.Unavailable, codes.DeadlineExceeded:
			return resilience.Failure
		}
		return resilience.Success
	}
	if errors.Is(err, ErrNacked) {
		// A nack counts only once the route's publishes have been refused
		// for a while (resilience.BreakerSettings.RefusalGrace): RabbitMQ
		// 3.10 nacks publishes to a quorum queue whose leader is being
		// elected, for about 0.3 s after its node died; a queue at its
		// length limit (x-overflow reject-publish) refuses until drained.
		return resilience.Refused
	}
	if Code(err) == codes.Canceled || linkDown(err) || errors.Is(err, ErrHeadersTooLarge) {
		// An oversized call is the caller's doing, not the destination's:
		// it fails alone and says nothing about the route.
		return resilience.Ignored
	}
	return resilience.Failure
}

// linkDown reports whether err is figway's own link to the broker failing
// under the call — before its request was written (ErrNotPublished) or
// after (ErrChannelLost) — rather than the broker or the service answering
// about the route.
func linkDown(err error) bool {
	return errors.Is(err, ErrNotPublished) || errors.Is(err, ErrChannelLost)
}

// retryable reports whether a failed rpc call may be published once more:
// when it provably never reached the broker, on any route; when its channel
// or connection died after it was written, or the broker nacked it (a
// quorum queue electing a new leader), only on a route whose method is
// idempotent (retry: idempotent). Never after a return (the same publish
// would meet the same refusal), a reply, or the deadline.
func retryable(r *Route, err error) bool {
	switch {
	case errors.Is(err, ErrNotPublished):
		return true
	case errors.Is(err, ErrChannelLost), errors.Is(err, ErrNacked):
		return r.Retry == RetryIdempotent
	}
	return false
}

// lostRetries bounds the retries of a call on a retry: idempotent route
// whose last try lost its channel (ErrChannelLost, ErrNotConfirmed). Each
// waits for an open channel or the reconnect. figway abandons a stuck
// channel at the earliest broker.stall_timeout after it was overtaken; and
// after a node stops, the connection figway moves to can be closed by the
// broker at once: on RabbitMQ 3.10, in rolling restarts, with 541
// INTERNAL_ERROR 33 and 90 ms after it opened, while the quorum queue
// elected a new leader, with the calls retried there on it (the cause in
// the broker is not known; it was none of figway's declares).
const lostRetries = 3

// nackBackoff spaces the publishes of a call the broker keeps nacking: a
// quorum queue's leader election takes about 0.3 s (docs/errors.md,
// "Retries").
var nackBackoff = resilience.Backoff{Min: 20 * time.Millisecond, Max: 250 * time.Millisecond}

// retryDelay returns how long to wait before retry number i (from 0) of a
// call whose last try failed with err, a retryable error, or false when the
// call gets no more tries. A nacked call is tried again until its deadline;
// one that never left figway up to three times on a retry: idempotent route
// (it can fail before the client has noticed that its connection is gone,
// and then the first retry finds it "connected" and fails the same way),
// once elsewhere; one whose channel died (only on a retry: idempotent
// route), up to lostRetries times: after a partition the call that lost
// the cut-off node's connection is published again on a channel of the
// majority that may stick in turn, and after a node stops, on a
// connection the broker may close at once.
func retryDelay(r *Route, err error, i int) (time.Duration, bool) {
	switch {
	case errors.Is(err, ErrNacked):
		return nackBackoff.Delay(i), true
	case errors.Is(err, ErrChannelLost) && r.Retry == RetryIdempotent:
		return 0, i < lostRetries
	case i == 0:
		return 0, true
	case i <= 2 && r.Retry == RetryIdempotent && errors.Is(err, ErrNotPublished):
		return time.Duration(i) * 50 * time.Millisecond, true
	}
	return 0, false
}
