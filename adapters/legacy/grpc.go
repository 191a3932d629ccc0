package legacy

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/internal/grpcframe"
)

// GRPC proxies calls to the legacy gRPC service.
type GRPC struct {
	conn  *grpc.ClientConn
	codec grpcframe.Codec
}

// DialGRPC returns a proxy to target (host:port). The connection is made
// lazily and kept for the proxy's life; opts replace the default plaintext
// transport credentials when given.
func DialGRPC(target string, opts ...grpc.DialOption) (*GRPC, error) {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("legacy gRPC upstream %s: %w", target, err)
	}
	return &GRPC{conn: conn, codec: grpcframe.NewCodec()}, nil
}

// Close closes the upstream connection.
func (p *GRPC) Close() error { return p.conn.Close() }

// streamDesc lets one handler carry any kind of call: the proxy does not
// need to know whether a method streams.
var streamDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// Proxy forwards the call on ss to the upstream and its answer back. It has
// the signature of a grpc.StreamHandler.
func (p *GRPC) Proxy(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "figway: no method on the stream")
	}
	ctx, cancel := context.WithCancel(ss.Context()) // keeps the caller's deadline
	defer cancel()
	md, _ := metadata.FromIncomingContext(ctx)
	ctx = metadata.NewOutgoingContext(ctx, forwardable(md))
	cs, err := p.conn.NewStream(ctx, streamDesc, method, grpc.ForceCodecV2(p.codec))
	if err != nil {
		return upstreamErr(err)
	}

	up := make(chan error, 1)
	go func() { up <- toUpstream(ss, cs) }()
	down := make(chan error, 1)
	go func() { down <- toCaller(cs, ss) }()

	for range 2 {
		select {
		case err := <-up:
			if err != nil {
				// The caller's side failed: abandon the upstream call.
				cancel()
				<-down
				return err
			}
			up = nil // the caller finished sending; keep relaying the answer
		case err := <-down:
			// The upstream ended the call: its trailer and status are the
			// answer. The caller-side goroutine ends with the handler's
			// context (grpc-go cancels it when we return).
			ss.SetTrailer(cs.Trailer())
			cancel()
			if err == io.EOF {
				return nil
			}
			return upstreamErr(err)
		}
	}
	return nil
}

// toUpstream relays the caller's messages to the upstream until the caller
// closes its side.
func toUpstream(ss grpc.ServerStream, cs grpc.ClientStream) error {
	for {
		var f grpcframe.Frame
		if err := ss.RecvMsg(&f); err != nil {
			if err == io.EOF {
				return cs.CloseSend()
			}
			return err
		}
		if err := cs.SendMsg(&f); err != nil {
			if err == io.EOF {
				return nil // the upstream ended the call; toCaller has its status
			}
			return err
		}
	}
}

// toCaller relays the upstream's header and messages to the caller; it
// returns io.EOF when the upstream ended the call with OK.
func toCaller(cs grpc.ClientStream, ss grpc.ServerStream) error {
	for i := 0; ; i++ {
		var f grpcframe.Frame
		err := cs.RecvMsg(&f)
		if i == 0 {
			// The header is there once the first message (or the end of
			// the call) is: send it to the caller before anything else.
			if md, herr := cs.Header(); herr == nil && len(md) > 0 {
				if serr := ss.SendHeader(md); serr != nil {
					return serr
				}
			}
		}
		if err != nil {
			return err
		}
		if err := ss.SendMsg(&f); err != nil {
			return err
		}
	}
}

// upstreamErr keeps the upstream's status; a transport failure reaching it
// is UNAVAILABLE, as grpc-go reports it.
func upstreamErr(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, "legacy upstream: "+err.Error())
	}
	return status.Error(codes.Unavailable, "legacy upstream: "+err.Error())
}

// forwardable drops the metadata grpc-go sets itself on the outgoing call.
func forwardable(md metadata.MD) metadata.MD {
	out := md.Copy()
	for _, k := range []string{":authority", "user-agent", "content-type", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "te"} {
		delete(out, k)
	}
	return out
}

// Unary sends one request frame to the upstream and returns its reply, with
// the upstream's header and trailer. It serves fallback, canary and shadow
// calls, whose request figway has already read.
// It implements gateway.Legacy.
func (p *GRPC) Unary(ctx context.Context, method string, req []byte, md metadata.MD) (resp []byte, header, trailer metadata.MD, err error) {
	ctx = metadata.NewOutgoingContext(ctx, forwardable(md))
	in, out := grpcframe.Frame(req), grpcframe.Frame(nil)
	err = p.conn.Invoke(ctx, method, &in, &out, grpc.ForceCodecV2(p.codec), grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		return nil, header, trailer, upstreamErr(err)
	}
	return out, header, trailer, nil
}
