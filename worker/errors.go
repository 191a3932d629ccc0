package worker

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// decodeError is a request body that does not decode into the handler's
// request type.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return "decode request: " + e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// encodeError is a handler's response that does not encode.
type encodeError struct{ err error }

func (e *encodeError) Error() string { return "encode response: " + e.err.Error() }
func (e *encodeError) Unwrap() error { return e.err }

// errPanic replaces a handler's panic. The panic value is logged, not
// sent: it may hold internals the caller must not see.
var errPanic = errors.New("worker: handler panicked")

// statusOf maps what processing a request returned to the status of its
// reply; nil is OK. It is the one place where errors become gRPC codes:
//   - a status error (status.Error, or one wrapping it) keeps its code,
//     message and details: the handler chose them;
//   - a context error becomes DEADLINE_EXCEEDED or CANCELED;
//   - a body that does not decode is INVALID_ARGUMENT;
//   - a response that does not encode, and a panic, are INTERNAL;
//   - any other error is UNKNOWN with the error's text, as grpc-go does.
func statusOf(err error) *status.Status {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return st
	}
	var de *decodeError
	var ee *encodeError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return status.FromContextError(err)
	case errors.As(err, &de):
		return status.New(codes.InvalidArgument, de.Error())
	case errors.As(err, &ee):
		return status.New(codes.Internal, ee.Error())
	case errors.Is(err, errPanic):
		return status.New(codes.Internal, errPanic.Error())
	}
	return status.New(codes.Unknown, err.Error())
}
