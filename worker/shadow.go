package worker

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// HandleOption changes how [Handle] serves a method.
type HandleOption func(*handleOptions)

type handleOptions struct {
	shadow      any // func(context.Context, Req) (Resp, error) of the method's types
	skipShadows bool
}

// OnShadow serves the method's shadow copies (see [IsShadow]) with h
// instead of the handler: a dry run that computes and returns the answer
// the handler would give — for figway to compare with legacy's — without
// its side effects (no write, no event, no e-mail). Use it to shadow a
// write method safely (docs/migration.md). h's request and response types
// must be the handler's; [Handle] panics otherwise.
func OnShadow[Req, Resp proto.Message](h func(ctx context.Context, req Req) (Resp, error)) HandleOption {
	return func(o *handleOptions) { o.shadow = h }
}

// SkipShadows leaves the method's shadow copies unrun: a shadow event is
// acknowledged as if handled, and a compared shadow call (an rpc) is
// answered UNIMPLEMENTED, which figway counts as a mismatch. Use it for a
// method that cannot run without side effects and has no dry run.
func SkipShadows() HandleOption {
	return func(o *handleOptions) { o.skipShadows = true }
}

// errShadowSkipped answers a shadow copy that SkipShadows leaves unrun.
var errShadowSkipped = status.Error(codes.Unimplemented, "worker: this method skips shadow copies (worker.SkipShadows)")

// shadowHandler returns the handler of the shadow copies of a method
// whose handler is h, per opts.
func shadowHandler[Req, Resp proto.Message](method string, h func(context.Context, Req) (Resp, error), opts []HandleOption) func(context.Context, Req) (Resp, error) {
	var o handleOptions
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.skipShadows:
		return func(context.Context, Req) (Resp, error) {
			var zero Resp
			return zero, errShadowSkipped
		}
	case o.shadow != nil:
		sh, ok := o.shadow.(func(context.Context, Req) (Resp, error))
		if !ok {
			panic(fmt.Sprintf("worker: Handle(%s): OnShadow's handler is a %T; want the handler's types, %T", method, o.shadow, h))
		}
		return sh
	}
	return h
}
