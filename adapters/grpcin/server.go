// Package grpcin is figway's gRPC ingress: a grpc-go server that accepts
// any unary method of the loaded descriptor sets, with no generated code,
// and hands each call to the gateway with its request bytes untouched.
package grpcin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/grpcframe"
	"github.com/figway/figway/wire"
)

// HeaderEventID is the response header that carries the id of the event an
// event route published.
const HeaderEventID = "figway-event-id"

// HeaderRetryAfter is the trailer of a call refused by its route's
// rate_limit: whole seconds until the caller may call again.
const HeaderRetryAfter = "retry-after"

// Options configures a Server.
type Options struct {
	// MaxRequestBytes bounds a request message; a larger one is refused
	// with RESOURCE_EXHAUSTED before it reaches the broker. If 0, 4 MiB.
	MaxRequestBytes int
	Logger          *slog.Logger // if nil, slog.Default()
	// Register, if set, is called with the grpc.Server before it serves, to
	// add services of figway's own (health, reflection).
	Register func(*grpc.Server)
	// Legacy, if set, serves every call that no route sends to the broker
	// (no route, or `to: legacy`), unary or streaming: the legacy
	// passthrough. If nil, those calls answer UNIMPLEMENTED.
	Legacy grpc.StreamHandler
	// ServerOptions are added to the grpc.Server's own: transport
	// credentials (TLS), stream interceptors (metrics).
	ServerOptions []grpc.ServerOption
	// AccessLog, if set, logs every successful broker call too, at info;
	// failed calls are always logged.
	AccessLog bool
	// MaxHeaderBytes bounds a call's header list (metadata); a larger one
	// has its stream reset before any of it is kept. If 0, 64 KiB.
	MaxHeaderBytes int
	// IdleTimeout closes a connection with no call that long (GOAWAY;
	// clients reconnect on their next call). If 0, 1m.
	IdleTimeout time.Duration
}

// Server is the gRPC ingress.
type Server struct {
	gw     *gateway.Gateway
	srv    *grpc.Server
	log    *slog.Logger
	legacy grpc.StreamHandler

	accessLog bool
}

// New returns a Server dispatching to gw. It listens on nothing: Serve does.
func New(gw *gateway.Gateway, o Options) *Server {
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = gateway.DefaultMaxRequestBytes
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = gateway.DefaultMaxHeaderBytes
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = gateway.DefaultIdleTimeout
	}
	s := &Server{gw: gw, log: o.Logger, legacy: o.Legacy, accessLog: o.AccessLog}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.srv = grpc.NewServer(append([]grpc.ServerOption{
		// Reuse a few goroutines for new streams instead of starting one
		// per call (grpc-go starts one anyway when all are busy, so calls
		// waiting on the broker never queue behind each other). Measured
		// with make bench on two cores: figway-grpc c=1 p50 734 → 679 µs,
		// c=64 7.3k → 8.0–8.4k calls/s. (Experimental in grpc-go.)
		grpc.NumStreamWorkers(uint32(max(4, 2*runtime.GOMAXPROCS(0)))),
		grpc.ForceServerCodecV2(grpcframe.NewCodec()),
		grpc.MaxRecvMsgSize(o.MaxRequestBytes),
		grpc.UnknownServiceHandler(s.handle),
		// grpc-go's default header list is 16 MiB: 60 streams of 15 MB of
		// metadata held a gigabyte. Edge proxies allow tens of KB.
		grpc.MaxHeaderListSize(uint32(o.MaxHeaderBytes)),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: o.IdleTimeout}),
		// Clients may ping to keep a connection alive, idle or not, but not
		// more often than this: a ping flood gets GOAWAY.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.InTapHandle(s.tap),
	}, o.ServerOptions...)...)
	if o.Register != nil {
		o.Register(s.srv)
	}
	return s
}

// Serve accepts calls on lis until ctx is cancelled, then stops accepting,
// lets calls in flight finish for up to grace, and returns. It returns nil
// after a cancellation, or the listener's error.
func (s *Server) Serve(ctx context.Context, lis net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() {
		s.srv.GracefulStop()
		close(stopped)
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		s.srv.Stop() // cancels the calls still running
		<-stopped
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// tap runs as a stream opens, before its message is read: a broker route's
// stream gets the route's timeout as its deadline from here, so a client
// that opens streams and never sends their message holds each for the
// route's timeout at most. grpc-go reads the message under this context.
// Other streams (legacy passthrough, figway's own services) are left as
// they come.
func (s *Server) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	r := s.gw.Route(info.FullMethodName)
	if r == nil || r.Timeout <= 0 {
		return ctx, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	return context.WithValue(ctx, tapCancel{}, cancel), nil
}

// tapCancel keys the cancel function of tap's context, which handle calls
// once the call is over.
type tapCancel struct{}

// handle serves every method that no registered service claims.
func (s *Server) handle(srv any, stream grpc.ServerStream) error {
	ctx := stream.Context()
	if cancel, ok := ctx.Value(tapCancel{}).(context.CancelFunc); ok {
		defer cancel()
	}
	method, _ := grpc.MethodFromServerStream(stream)
	// The one routing decision of the call: a reload after it does not
	// change where the call goes.
	r := s.gw.Route(method)
	if r == nil {
		return s.passthrough(srv, stream, method)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if r.Checked() {
		// Before the message is read: a refused call costs no body.
		var err error
		if md, err = s.admit(ctx, r, md); err != nil {
			return s.failed(ctx, stream, method, err)
		}
	}
	if r.Streams() {
		return s.serveStream(ctx, srv, stream, method, r, md)
	}
	req, err := recvOne(stream, method)
	if err != nil {
		return err
	}
	c := call(method, req, md)
	start := time.Now()
	res, err := s.gw.InvokeRoute(ctx, r, c)
	if err != nil {
		return s.failed(ctx, stream, method, err)
	}
	return s.answer(ctx, stream, method, res, start)
}

// failed answers a call that failed with err, and logs it. (It and
// answer are functions of their own to keep handle's frame small: a
// call's goroutine is deepest while the message is written to RabbitMQ
// under handle, docs/performance.md, "Held calls and goroutine stacks".)
func (s *Server) failed(ctx context.Context, stream grpc.ServerStream, method string, err error) error {
	if re := (*gateway.ReplyError)(nil); errors.As(err, &re) {
		if len(re.Header) > 0 {
			stream.SetHeader(re.Header)
		}
		stream.SetTrailer(re.Trailer)
	}
	var limited *gateway.RateLimitError
	if errors.As(err, &limited) {
		stream.SetTrailer(metadata.Pairs(HeaderRetryAfter, strconv.Itoa(limited.RetryAfterSeconds())))
	}
	st := gateway.Status(err)
	s.log.LogAttrs(ctx, gateway.ErrorLogLevel(err), "call failed",
		slog.String("method", method), slog.String("code", st.Code().String()), slog.String("err", err.Error()))
	return st.Err()
}

// passthrough hands a call that no route takes to legacy, after its
// route's edge checks if it has any (auth on a to: legacy route).
func (s *Server) passthrough(srv any, stream grpc.ServerStream, method string) error {
	if s.legacy == nil {
		return status.Errorf(codes.Unimplemented, "figway: no route for %s and no legacy upstream", method)
	}
	if r := s.gw.Checked(method); r != nil {
		ctx := stream.Context()
		md, _ := metadata.FromIncomingContext(ctx)
		md, err := s.admit(ctx, r, md)
		if err != nil {
			return s.failed(ctx, stream, method, err)
		}
		stream = &admitted{ServerStream: stream, ctx: metadata.NewIncomingContext(ctx, md)}
	}
	return s.legacy(srv, stream)
}

// admit runs r's edge checks on a call whose metadata is md, and returns
// the metadata as they leave it: the headers of the token's claims in
// place of any the caller sent, the token removed unless forwarded.
func (s *Server) admit(ctx context.Context, r *gateway.Route, md metadata.MD) (metadata.MD, error) {
	adm, err := s.gw.Admit(ctx, r, gateway.Caller{Header: md.Get, IP: peerIP(ctx)})
	if err != nil || adm == nil {
		return md, err
	}
	md = md.Copy()
	for _, k := range adm.Remove {
		delete(md, k)
	}
	for _, kv := range adm.Add {
		md.Append(kv[0], kv[1])
	}
	return md, nil
}

// admitted is a passthrough stream with the metadata its edge checks left.
type admitted struct {
	grpc.ServerStream
	ctx context.Context
}

func (a *admitted) Context() context.Context { return a.ctx }

// peerIP is the address of the call's client, without its port.
func peerIP(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return p.Addr.String()
	}
	return host
}

// answer sends the result of a call that started at start.
func (s *Server) answer(ctx context.Context, stream grpc.ServerStream, method string, res *gateway.Result, start time.Time) error {
	if s.accessLog {
		s.log.LogAttrs(ctx, slog.LevelInfo, "call",
			slog.String("method", method), slog.String("code", "OK"), slog.Duration("took", time.Since(start)))
	}
	if len(res.Header) > 0 {
		if err := stream.SetHeader(res.Header); err != nil {
			return err
		}
	}
	stream.SetTrailer(res.Trailer)
	if res.EventID != "" {
		if err := stream.SetHeader(metadata.Pairs(HeaderEventID, res.EventID)); err != nil {
			return err
		}
	}
	resp := grpcframe.Frame(res.Body)
	return stream.SendMsg(&resp)
}

// recvOne reads the one request message of a call of method.
func recvOne(stream grpc.ServerStream, method string) (grpcframe.Frame, error) {
	var req grpcframe.Frame
	if err := stream.RecvMsg(&req); err != nil {
		return nil, err // grpc-go's status: cancelled, too large, ...
	}
	// A unary or server-streaming method takes one request message; a
	// second one is a cardinality violation, answered INTERNAL as
	// grpc-go's generated servers (and so the legacy service) answer it.
	// Waiting for the end of the client's stream costs nothing: such a
	// client half-closes with its message.
	var extra grpcframe.Frame
	if err := stream.RecvMsg(&extra); err == nil {
		return nil, status.Errorf(codes.Internal, "grpc: received more than one request message for unary method %s", method)
	} else if !errors.Is(err, io.EOF) {
		return nil, err
	}
	return req, nil
}

// call is the gateway's call of method, with request req (nil until read)
// and the caller's metadata md (as the edge's checks left it).
func call(method string, req grpcframe.Frame, md metadata.MD) *gateway.Call {
	return &gateway.Call{
		Method:      method,
		Body:        req,
		ContentType: wire.ContentTypeProtobuf,
		Accept:      wire.ContentTypeProtobuf,
		Header:      md.Get,
		Traceparent: first(md.Get(wire.HeaderTraceparent)),
		Tracestate:  strings.Join(md.Get(wire.HeaderTracestate), ","), // W3C: one list across headers
		Metadata:    md,
	}
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}
