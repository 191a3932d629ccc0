package httpin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/operations"
	"github.com/figway/figway/wire"
)

// Response and request headers of the REST ingress.
const (
	// HeaderEventID carries the id of the event an event route published,
	// on its 202 Accepted answer.
	HeaderEventID = "Figway-Event-Id"
	// HeaderTimeout is the caller's timeout, in grpc-timeout's format
	// ("500m", "2S"), as grpc-gateway reads it.
	HeaderTimeout = "Grpc-Timeout"
)

// Options configures a Server.
type Options struct {
	// MaxRequestBytes bounds the request body, and the request message it
	// becomes; a larger one is answered 413 without reading past the
	// limit. If 0, 4 MiB.
	MaxRequestBytes int
	// UseProtoNames renders replies with the proto field names
	// (order_id) instead of protojson's lowerCamelCase (orderId). Requests
	// accept both always.
	UseProtoNames bool
	// EmitUnpopulated renders fields at their zero value too.
	EmitUnpopulated bool
	// DiscardUnknown ignores JSON fields and query parameters that name no
	// field of the request. If false, they are answered 400.
	DiscardUnknown bool
	// Passthrough, if not nil, serves the requests that no binding takes
	// — an unknown path, or another verb on a bound path — such as the
	// legacy REST service's reverse proxy. If nil, they are answered 404
	// and 405.
	Passthrough http.Handler
	// ReadHeaderTimeout bounds the reading of a request's headers. If 0,
	// 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the reading of a whole request, headers and body;
	// a broker route's body must also arrive before the call's deadline
	// (its route's timeout). If 0, 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds the writing of a broker route's answer past the
	// call's deadline: a client that does not read is cut then. If 0, 10s.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle that long. If 0, 1m.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (net/http answers 431
	// past it). If 0, 64 KiB.
	MaxHeaderBytes int
	Logger         *slog.Logger // if nil, slog.Default()
	// AccessLog, if set, logs every request a binding served without
	// error too, at info; failed ones are always logged.
	AccessLog bool
	// OpenAPIPath, if set, is the path of the OpenAPI document of the
	// bindings ([OpenAPI]), answered before any binding. If empty, it is
	// not served.
	OpenAPIPath string
	// Version is the document's info.version (figway's version).
	Version string
	// Middleware, if set, wraps the handler that Serve serves (metrics).
	Middleware func(http.Handler) http.Handler
	// Operations, if set, keeps the calls of async routes that outlive
	// their async.after, and OperationsPath serves them (docs/rest.md,
	// "Long calls"). If Operations is nil, async routes answer
	// synchronously.
	Operations *operations.Store
	// OperationsPath is the REST path of the operations. If empty,
	// /v1/operations.
	OperationsPath string
	// CORS, if not nil, is applied to every answer, passthrough and
	// errors included, and figway answers preflight requests.
	CORS *CORS
	// OnRoute, if set, is called with a request's context and the route
	// that took it — a binding's full method, or the operations' own label
	// — before the call runs: the hook through which Middleware learns the
	// route (metrics.SetRoute).
	OnRoute func(ctx context.Context, method string)
	// Tracer, if set, gives each call of an async route a span of its own
	// (docs/operations.md, "Tracing"): the request's span ends with its
	// answer, a 202 perhaps, and the call's is a new trace linked to it. If
	// nil, no span is made here; Middleware makes the SERVER span.
	Tracer trace.Tracer
}

// Server is the REST/JSON ingress. It serves the HTTP bindings of the
// gateway's route table and follows the table on reload through
// [Server.SetTable].
type Server struct {
	gw     *gateway.Gateway
	opts   Options
	log    *slog.Logger
	router atomic.Pointer[router]
	// serve is what ServeHTTP serves: the current router, behind the
	// CORS policy when there is one.
	serve http.Handler
}

var _ http.Handler = (*Server)(nil)

// New returns a Server for the current route table of gw. It fails when a
// rule of a routed method cannot be served; it listens on nothing: Serve
// does.
func New(gw *gateway.Gateway, o Options) (*Server, error) {
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = gateway.DefaultMaxRequestBytes
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = gateway.DefaultReadHeaderTimeout
	}
	if o.OperationsPath == "" {
		o.OperationsPath = operations.DefaultPath
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = gateway.DefaultReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = gateway.DefaultWriteTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = gateway.DefaultIdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = gateway.DefaultMaxHeaderBytes
	}
	s := &Server{gw: gw, opts: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.serve = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.router.Load().mux.ServeHTTP(w, r) })
	if o.CORS != nil {
		s.serve = newCORSPolicy(*o.CORS).wrap(s.serve, func(r *http.Request) []string { return s.router.Load().methods(r) })
	}
	if err := s.SetTable(gw.Table()); err != nil {
		return nil, err
	}
	return s, nil
}

// SetTable builds the REST bindings of t and swaps them in; requests
// already running finish on the bindings they started with. On error the
// bindings in service stay.
func (s *Server) SetTable(t *gateway.Table) error {
	rt, err := s.newRouter(t)
	if err != nil {
		return err
	}
	s.router.Store(rt)
	return nil
}

// Bindings returns "VERB /template → method" for every binding served,
// in the order of the routes.
func (s *Server) Bindings() []string {
	rt := s.router.Load()
	out := make([]string, len(rt.bindings))
	for i, b := range rt.bindings {
		out[i] = b.verb + " " + b.template + " → " + b.method
	}
	return out
}

// ServeHTTP serves one request through the current bindings, or the
// passthrough.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.OpenAPIPath != "" && r.URL.Path == s.opts.OpenAPIPath {
		s.router.Load().serveOpenAPI(w, r)
		return
	}
	s.serve.ServeHTTP(w, r)
}

// Serve accepts requests on lis until ctx is cancelled, then stops
// accepting, lets requests in flight finish for up to grace, cancels those
// still running and returns once they have answered. It returns nil after
// a cancellation, or the listener's error.
func (s *Server) Serve(ctx context.Context, lis net.Listener, grace time.Duration) error {
	// Calls run on a context of their own: ctx's end stops the accepting,
	// not the calls, which get their grace period.
	calls, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	var h http.Handler = s
	if s.opts.Middleware != nil {
		h = s.opts.Middleware(s)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    s.opts.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return calls },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	graceCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if srv.Shutdown(graceCtx) != nil {
		// Grace is over: cancel the calls, which answer at once, and wait
		// a moment for them before closing what is left.
		abort()
		last, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(last) != nil {
			srv.Close()
		}
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// onRoute names the route of a request for Options.OnRoute, if set.
func (s *Server) onRoute(ctx context.Context, route string) {
	if s.opts.OnRoute != nil {
		s.opts.OnRoute(ctx, route)
	}
}

func (s *Server) handler(rt *router, b *binding) runtime.HandlerFunc {
	return probed(func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		s.onRoute(r.Context(), b.method)
		start := time.Now()
		adm, err := s.admit(b.route, r)
		if err == nil {
			err = s.call(rt, b, w, r, params, adm)
		}
		if err != nil {
			s.failed(rt, b, w, r, err)
			return
		}
		if s.opts.AccessLog {
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "call", slog.String("method", b.method),
				slog.String("http", r.Method+" "+r.URL.Path), slog.Duration("took", time.Since(start)))
		}
	})
}

// call runs one request through the gateway on its binding's route, taken
// once when the route table was built (as the gRPC ingress takes it from
// Gateway.Route), and writes the answer; it returns the error to answer
// instead.
func (s *Server) call(rt *router, b *binding, w http.ResponseWriter, r *http.Request, params map[string]string, adm *gateway.Admission) error {
	s.deadlines(w, b.route)
	ctx, cancel, err := callContext(r)
	if err != nil {
		return err
	}
	defer cancel()
	c, raw, err := s.newCall(ctx, rt, b, r, params, adm)
	if err != nil {
		return err
	}
	if b.passthrough {
		return s.passthrough(w, r, b, raw)
	}
	if b.route.Streams() {
		if s.opts.Passthrough != nil && s.gw.StreamsToLegacy(b.route, c) {
			return s.passthrough(w, r, b, raw)
		}
		return s.stream(ctx, rt, b, w, r, c)
	}
	var res *gateway.Result
	if a := asyncOf(b); a != nil && s.opts.Operations != nil {
		var answered bool
		if res, answered, err = s.invokeAsync(w, r, rt, b, a, c); answered {
			return nil
		}
	} else {
		res, err = s.gw.InvokeRoute(ctx, b.route, c)
	}
	if err != nil {
		return err
	}
	return s.answer(rt, b, w, r, res)
}

// callContext is the request's context, bounded by its Grpc-Timeout
// header if it has one.
func callContext(r *http.Request) (context.Context, context.CancelFunc, error) {
	tm := r.Header.Get(HeaderTimeout)
	if tm == "" {
		return r.Context(), func() {}, nil
	}
	d, err := wire.ParseGRPCTimeout(tm)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", gateway.ErrBadRequest, HeaderTimeout, err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	return ctx, cancel, nil
}

// newCall decodes the request (JSON body, path and query) into the
// request message and makes the gateway's Call of it; raw is the body as
// read, for the passthrough.
func (s *Server) newCall(ctx context.Context, rt *router, b *binding, r *http.Request, params map[string]string, adm *gateway.Admission) (c *gateway.Call, raw []byte, err error) {
	msg, raw, err := rt.dec.decode(b, r, params)
	if err != nil {
		return nil, nil, err
	}
	body, err := encode(msg, b.contentType, rt.types)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: encode %s: %v", gateway.ErrBadRequest, b.input.FullName(), err)
	}
	if len(body) > s.opts.MaxRequestBytes {
		return nil, nil, fmt.Errorf("%w: the request message is %d bytes, over the limit of %d", gateway.ErrTooLarge, len(body), s.opts.MaxRequestBytes)
	}
	c = &gateway.Call{
		Method:      b.method,
		Body:        body,
		ContentType: b.contentType,
		Accept:      b.contentType,
		Header:      forwardable(r.Header),
		Traceparent: r.Header.Get(wire.HeaderTraceparent),
		Tracestate:  strings.Join(r.Header.Values(wire.HeaderTracestate), ","), // W3C: one list across headers
	}
	if b.mayGoLegacy {
		// What the legacy gRPC service would have got from grpc-gateway in
		// front of it: Grpc-Metadata-* and Authorization, X-Forwarded-*.
		if actx, err := runtime.AnnotateIncomingContext(ctx, rt.mux, r, "/"+b.method); err == nil {
			c.Metadata, _ = metadata.FromIncomingContext(actx)
		}
		c.Metadata = withClaims(c.Metadata, adm)
	}
	return c, raw, nil
}

// passthrough hands a request of a route the gateway does not serve to
// the legacy REST service, as if never bound; without one, the method has
// no route.
func (s *Server) passthrough(w http.ResponseWriter, r *http.Request, b *binding, raw []byte) error {
	if s.opts.Passthrough == nil {
		return fmt.Errorf("%s: %w", b.method, gateway.ErrNoRoute)
	}
	if raw != nil {
		r.Body = io.NopCloser(bytes.NewReader(raw))
	}
	s.opts.Passthrough.ServeHTTP(w, r)
	return nil
}

// answer writes the reply: its body in the binding's shape, the reply
// metadata as headers and trailers, the worker's HTTP status (or 202 with
// the event's id).
func (s *Server) answer(rt *router, b *binding, w http.ResponseWriter, r *http.Request, res *gateway.Result) error {
	out, err := rt.render(b, res.Body, res.ContentType)
	if err != nil {
		return err
	}
	// The reply metadata of the worker, or of the legacy service when it
	// answered (canary, fallback, shadow, pin).
	replyHeaders(w, r, b.ownHeaders, res.Header, res.Trailer)
	code := http.StatusOK
	if res.HTTPStatus != 0 {
		code = res.HTTPStatus // 2xx: the wire checked it
	}
	if res.EventID != "" {
		w.Header().Set(HeaderEventID, res.EventID)
		code = http.StatusAccepted
	}
	if bodyless(code) {
		w.WriteHeader(code)
		return nil
	}
	w.Header().Set("Content-Type", rt.marshaler.ContentType(nil))
	w.WriteHeader(code)
	w.Write(out)
	sendTrailers(w, r, b.ownHeaders, res.Trailer)
	return nil
}

// deadlines bounds the reading of the request and the writing of its
// answer by route r's timeout.
func (s *Server) deadlines(w http.ResponseWriter, r *gateway.Route) {
	now := time.Now()
	rc := http.NewResponseController(w)
	if deadline := now.Add(r.Timeout); r.Timeout < s.opts.ReadTimeout {
		rc.SetReadDeadline(deadline)
	}
	rc.SetWriteDeadline(now.Add(r.Timeout + s.opts.WriteTimeout))
}

// encode renders the request message in the route's content type.
// Required fields (proto2) are left for the service to check, as gRPC
// callers' bytes are.
func encode(msg *dynamicpb.Message, contentType string, types resolver) ([]byte, error) {
	if contentType == wire.ContentTypeJSON {
		return protojson.MarshalOptions{Resolver: types, AllowPartial: true}.Marshal(msg)
	}
	return proto.MarshalOptions{AllowPartial: true}.Marshal(msg)
}

// failed logs a failed call once, at the edge, and answers it.
func (s *Server) failed(rt *router, b *binding, w http.ResponseWriter, r *http.Request, err error) {
	code := gateway.Code(err)
	s.log.LogAttrs(r.Context(), gateway.ErrorLogLevel(err), "call failed",
		slog.String("method", b.method), slog.String("code", code.String()),
		slog.Int("http_status", httpStatus(err)), slog.String("err", err.Error()))
	if re := (*gateway.ReplyError)(nil); errors.As(err, &re) {
		replyHeaders(w, r, b.ownHeaders, re.Header, nil)
	}
	w = challenge(w, err)
	if errors.Is(err, gateway.ErrTooLarge) {
		// The rest of the body stays unread: end the connection rather
		// than let net/http drain it for the next request.
		w.Header().Set("Connection", "close")
	}
	rt.fail(w, r, err)
}
