package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"

	"google.golang.org/grpc/metadata"

	"github.com/figway/figway/wire"
)

// replyMeta is what a handler said about its reply besides the message:
// figway passes it on to the caller (docs/wire-protocol.md).
type replyMeta struct {
	mu sync.Mutex
	m  wire.ReplyMeta
}

// errNoHandler is returned by the setters outside a handler.
var errNoHandler = errors.New("worker: not called with a handler's context")

// SetHeader adds md to the response header metadata of the reply to the
// request served under ctx, as grpc.SetHeader does on a gRPC server: gRPC
// callers get it as response headers, REST callers as Grpc-Metadata-<key>
// headers, or under its own name for the keys the route lists in
// response_headers (Location, ETag...). Keys are lower-cased; values of
// keys ending in "-bin" are binary. It may be called several times; the
// values add up. It fails outside a handler, or for a key gRPC or HTTP
// reserve (grpc-*, content-type, hop-by-hop headers) or figway's own.
//
// Metadata goes with errors too. Events have no reply: there it is
// ignored. The reply's headers, metadata included, must fit the broker's
// frame_max (128 KiB by default); a reply that would not is answered
// INTERNAL instead.
func SetHeader(ctx context.Context, md metadata.MD) error {
	return addMetadata(ctx, md, func(m *wire.ReplyMeta) *map[string][]string { return &m.Header })
}

// SetTrailer adds md to the trailer metadata of the reply, as
// grpc.SetTrailer does: gRPC callers get it as trailers, REST callers as
// Grpc-Trailer-<key> HTTP trailers when they accept trailers (TE:
// trailers), or as headers of its own name for the keys of
// response_headers. See [SetHeader].
func SetTrailer(ctx context.Context, md metadata.MD) error {
	return addMetadata(ctx, md, func(m *wire.ReplyMeta) *map[string][]string { return &m.Trailer })
}

func addMetadata(ctx context.Context, md metadata.MD, which func(*wire.ReplyMeta) *map[string][]string) error {
	r := requestFrom(ctx)
	if r == nil {
		return errNoHandler
	}
	add := make(map[string][]string, len(md))
	for k, vs := range md {
		k = strings.ToLower(k)
		if err := wire.CheckMetadataKey(k); err != nil {
			return fmt.Errorf("worker: reply metadata: %v", err)
		}
		add[k] = append(add[k], vs...)
	}
	r.reply.mu.Lock()
	defer r.reply.mu.Unlock()
	dst := which(&r.reply.m)
	if *dst == nil {
		*dst = make(map[string][]string, len(add))
	}
	for k, vs := range add {
		(*dst)[k] = append((*dst)[k], vs...)
	}
	return nil
}

// SetHTTPStatus sets the HTTP status, 200 to 299, that REST callers get
// when the handler succeeds: 201 Created with a Location header (see
// [SetHeader]), 202 Accepted, 204 No Content (figway then sends no body).
// Without it, REST callers get 200. Errors keep their own mapping (a
// NOT_FOUND status is 404): only success codes can be set. gRPC callers
// never see it. It fails outside a handler or for a code outside 200–299.
func SetHTTPStatus(ctx context.Context, code int) error {
	r := requestFrom(ctx)
	if r == nil {
		return errNoHandler
	}
	if code < 200 || code > 299 {
		return fmt.Errorf("worker: HTTP status %d: only 200-299 can be set; return a gRPC status error for failures", code)
	}
	r.reply.mu.Lock()
	r.reply.m.HTTPStatus = code
	r.reply.mu.Unlock()
	return nil
}

// meta returns a copy of what the handler set.
func (m *replyMeta) meta() wire.ReplyMeta {
	m.mu.Lock()
	defer m.mu.Unlock()
	return wire.ReplyMeta{Header: maps.Clone(m.m.Header), Trailer: maps.Clone(m.m.Trailer), HTTPStatus: m.m.HTTPStatus}
}

// IsShadow reports whether the request served under ctx is a shadow copy:
// a call that figway sent to the legacy service, which answered the
// caller, and mirrored here (AMQP header figway-shadow: 1). Its reply, if
// figway waits for one (compare: true), is only compared with legacy's.
// A handler with side effects must not apply them for a shadow copy: the
// legacy service has already done so. See [OnShadow] and [SkipShadows].
func IsShadow(ctx context.Context) bool {
	if r := requestFrom(ctx); r != nil {
		return wire.IsShadow(r.headers)
	}
	return false
}
