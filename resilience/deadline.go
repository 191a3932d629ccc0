package resilience

import (
	"context"
	"errors"
	"time"
)

// Deadline returns the effective deadline of a call that starts at now: the
// shorter of the caller's deadline (carried by ctx) and now+timeout. If
// timeout is 0 or less, only the caller's deadline counts; ok is false when
// there is neither.
func Deadline(ctx context.Context, now time.Time, timeout time.Duration) (deadline time.Time, ok bool) {
	caller, hasCaller := ctx.Deadline()
	if timeout <= 0 {
		return caller, hasCaller
	}
	route := now.Add(timeout)
	if hasCaller && caller.Before(route) {
		return caller, true
	}
	return route, true
}

// Ended returns why ctx is done, as [context.Context.Err] does, except
// that a call that started at start and was cancelled close to its
// deadline — within a tenth of its time budget, at least 20 ms and at most
// 250 ms — or after it, ended because its deadline passed: Ended returns
// context.DeadlineExceeded, whoever set the deadline. Only a caller that
// went away before its deadline is a cancellation (docs/errors.md). It
// returns nil while ctx is not done.
//
// A gRPC client resets its stream when its own deadline passes; the server
// started its copy of that deadline when the request's headers arrived, a
// transit time later — longer on a loaded machine, where the headers wait
// for a goroutine to read them — so the reset cancels the call just before
// the server's own timer would have expired it.
func Ended(ctx context.Context, start time.Time) error {
	err := ctx.Err()
	if !errors.Is(err, context.Canceled) {
		return err
	}
	d, ok := ctx.Deadline()
	if !ok {
		return err
	}
	grace := min(max(d.Sub(start)/10, 20*time.Millisecond), 250*time.Millisecond)
	if time.Until(d) <= grace {
		return context.DeadlineExceeded
	}
	return err
}
