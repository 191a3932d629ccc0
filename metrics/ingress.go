package metrics

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/gateway"
)

// StreamInterceptor counts and times the calls of a gRPC server. route
// names a call's route label from its full method name ("/pkg.Svc/M"), or
// says not to count it (figway's own health and reflection services);
// [GRPCRoutes] is the usual one. It applies to the unknown-service handler
// too, which serves every routed method.
func (m *Metrics) StreamInterceptor(route func(fullMethod string) (label string, count bool)) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		label, count := route(info.FullMethod)
		if !count {
			return handler(srv, ss)
		}
		start := time.Now()
		err := handler(srv, ss)
		m.observe(ss.Context(), label, IngressGRPC, status.Code(err).String(), time.Since(start))
		return err
	}
}

// GRPCRoutes labels a gRPC call with its route in the table serving when
// it arrives, or [Unrouted]; it does not count figway's own services
// (grpc.health.v1, grpc.reflection.*).
func GRPCRoutes(table func() *gateway.Table) func(string) (string, bool) {
	return func(method string) (string, bool) {
		if strings.HasPrefix(method, "/grpc.health.") || strings.HasPrefix(method, "/grpc.reflection.") {
			return "", false
		}
		if r := table().Lookup(method); r != nil {
			return r.Method, true
		}
		return Unrouted, true
	}
}

// routeKey keys the *string that [HTTP] puts in each request's context.
type routeKey struct{}

// SetRoute names the route of the HTTP request served under ctx, for the
// labels of [Metrics.HTTP]; the REST handler calls it once it has matched
// the request to a method. Outside [Metrics.HTTP] it does nothing.
func SetRoute(ctx context.Context, method string) {
	if p, ok := ctx.Value(routeKey{}).(*string); ok {
		*p = strings.TrimPrefix(method, "/")
	}
}

// HTTP counts and times the requests next serves, labelled with ingress
// "http", the HTTP status as code and the route that next named with
// [SetRoute] — [Unrouted] if it named none. Never the raw path.
func (m *Metrics) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := Unrouted
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, &route))
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		m.observe(r.Context(), route, IngressHTTP, strconv.Itoa(sw.status), time.Since(start))
	})
}

// statusWriter remembers the status of a response. Unwrap lets
// http.ResponseController reach the writer's Flush and deadlines.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
