package gateway

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Errors the gateway and its ports return. Callers branch on them with
// errors.Is; [Status] maps them to gRPC codes (the table of docs/errors.md).
var (
	// ErrNoRoute: the method has no route to the broker and no legacy
	// upstream takes it.
	ErrNoRoute = errors.New("no route for method")
	// ErrUnavailable: the broker cannot take the call now — not connected,
	// blocked by an alarm, the channel was lost, the publish was nacked or
	// returned as unroutable.
	ErrUnavailable = errors.New("broker unavailable")
	// ErrUnroutable: the broker returned the message (no queue bound for
	// its routing key). It is always wrapped together with ErrUnavailable.
	ErrUnroutable = errors.New("message unroutable")
	// ErrNacked: the broker refused responsibility for the message. It is
	// always wrapped together with ErrUnavailable.
	ErrNacked = errors.New("publish nacked")
	// ErrBreakerOpen: the route's circuit breaker refused the call without
	// publishing it (open, or half-open with its probes taken). It is
	// always wrapped together with ErrUnavailable.
	ErrBreakerOpen = errors.New("circuit breaker open")
	// ErrNotPublished: the request provably never reached the broker (no
	// connection, a blocked one, or its channel died before the publish was
	// written), so publishing it again is safe. It is always wrapped
	// together with ErrUnavailable. It reports figway's own link to the
	// broker failing, never an answer about the route: it does not count
	// for the route's breaker.
	ErrNotPublished = errors.New("request not published")
	// ErrChannelLost: the channel or connection died after the request was
	// written and before its outcome (reply or confirm) came back. The
	// broker, and a worker, may have it. It is always wrapped together with
	// ErrUnavailable. Like ErrNotPublished, it does not count for the
	// route's breaker.
	ErrChannelLost = errors.New("channel lost after publishing")
	// ErrNotConfirmed: the broker neither confirmed nor nacked the request
	// while it confirmed later publishes to the same destination made on
	// other channels, and figway abandoned the channel as stuck (a RabbitMQ
	// 3.10 channel after a network partition). The broker, and a worker,
	// may have it. It is always wrapped together with ErrUnavailable and
	// ErrChannelLost; unlike another lost channel, it is no reason to
	// stop publishing a call of a retry: idempotent route again.
	ErrNotConfirmed = errors.New("publish not confirmed")
	// ErrNoConsumer: no queue of the route has a consumer (every worker is
	// down), so nobody would answer the call; it was not published, and
	// the route's breaker was not asked. It is always wrapped together
	// with ErrUnavailable.
	ErrNoConsumer = errors.New("no consumer")
	// ErrOverloaded: the route's in-flight limit is reached.
	ErrOverloaded = errors.New("too many calls in flight")
	// ErrTooLarge: the request is larger than the configured limit.
	ErrTooLarge = errors.New("request too large")
	// ErrHeadersTooLarge: what the call would put in the message's
	// headers is over a limit — a forwarded header's value or all of them
	// (server.max_forwarded_value_bytes, server.max_forwarded_bytes), or
	// the broker's frame_max for the whole header table. Nothing was
	// published.
	ErrHeadersTooLarge = errors.New("request headers too large")
	// ErrBadRequest: the request cannot be decoded.
	ErrBadRequest = errors.New("bad request")
	// ErrBadReply: the reply cannot be decoded.
	ErrBadReply = errors.New("bad reply")
)

// Status maps an error of [Gateway.Invoke] to the gRPC status the caller
// gets: the service's own status when it replied with one, otherwise the
// code of docs/errors.md's table with the error's text. It is the one place where
// figway's errors become codes; each ingress maps the status to its own
// protocol (HTTP uses grpc-gateway's table).
func Status(err error) *status.Status {
	if err == nil {
		return nil
	}
	var rs *ReplyError
	if errors.As(err, &rs) {
		return rs.Status
	}
	if s, ok := status.FromError(err); ok {
		return s // legacy's status, as it came
	}
	return status.New(Code(err), callerMessage(err))
}

// callerMessage is what a caller reads of err. Failures of the broker
// path and of replies carry internals below figway's own words — the
// broker's close reason (FRAME_ERROR …), a worker's malformed header and
// its Go type, exchange and routing key names — which the ingress logs in
// full; the caller gets the sentinels' stable words only. Errors about
// the caller's own request (bad JSON, a header over a limit) keep their
// detail: it says what to fix.
func callerMessage(err error) string {
	var words []string
	for _, s := range stableSentinels {
		if errors.Is(err, s) {
			words = append(words, s.Error())
		}
	}
	switch {
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrBadReply):
		var nc noConsumerError
		if errors.As(err, &nc) {
			words = append(words, nc.Error())
		}
		return strings.Join(words, ": ")
	case errors.Is(err, context.DeadlineExceeded) && errors.Is(err, ErrStreamBroken):
		return "the deadline passed before the stream's end"
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer before the deadline"
	case Code(err) == codes.Unknown:
		return "internal error"
	}
	return err.Error()
}

// stableSentinels are the errors whose words make up a caller's message
// for a failure of the broker path, in the order they are read.
var stableSentinels = []error{ErrUnavailable, ErrBreakerOpen, ErrUnroutable, ErrNacked, ErrChannelLost, ErrNotConfirmed, ErrNotPublished, ErrBadReply, ErrStreamBroken, ErrStreamGap}

// Code returns the gRPC code for err, as [Status] does.
func Code(err error) codes.Code {
	var rs *ReplyError
	switch {
	case err == nil:
		return codes.OK
	case errors.As(err, &rs):
		return rs.Status.Code()
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, ErrUnauthenticated):
		return codes.Unauthenticated
	case errors.Is(err, ErrOverloaded), errors.Is(err, ErrTooLarge), errors.Is(err, ErrHeadersTooLarge), errors.Is(err, ErrRateLimited),
		errors.Is(err, ErrStreamBuffer):
		return codes.ResourceExhausted
	case errors.Is(err, ErrBadRequest):
		return codes.InvalidArgument
	case errors.Is(err, ErrNoRoute), errors.Is(err, ErrStreamOnly):
		return codes.Unimplemented
	case errors.Is(err, ErrBadReply):
		return codes.Internal
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return codes.Unknown
}

// LogLevel is the level an ingress logs a failed call at: a warning for
// what figway or the broker caused (unavailable, deadline, overload, a
// reply that does not decode), info for what the caller or the service
// chose.
func LogLevel(c codes.Code) slog.Level {
	switch c {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.ResourceExhausted, codes.Unknown:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// ErrorLogLevel is the level an ingress logs a call that failed with err
// at: [LogLevel] of its code, but debug for calls its route's edge checks
// refused (auth, rate_limit), which a flood of them must not turn into a
// flood of log lines: figway_auth_refused_total and
// figway_rate_limited_total count them.
func ErrorLogLevel(err error) slog.Level {
	if errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrRateLimited) {
		return slog.LevelDebug
	}
	return LogLevel(Code(err))
}

// ReplyError is a non-OK status that the service replied with. The gateway
// passes it to the caller as it came.
type ReplyError struct {
	Method string
	Status *status.Status
	// Header and Trailer are the reply's metadata, which a failed call
	// carries too.
	Header, Trailer metadata.MD
}

func (e *ReplyError) Error() string {
	return e.Method + ": service replied " + e.Status.Code().String() + ": " + e.Status.Message()
}

// GRPCStatus lets grpc-go and status.FromError see the service's status.
func (e *ReplyError) GRPCStatus() *status.Status { return e.Status }
