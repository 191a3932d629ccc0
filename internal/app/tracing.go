package app

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/figway/figway/metrics"
	"github.com/figway/figway/tracing"
)

// instrumentation names figway's tracer (the spans' otel.scope.name).
const instrumentation = "github.com/figway/figway"

// tracer is figway's tracing as the App wires it: nil when the environment
// configures none, and then nothing below instruments anything.
type tracer struct {
	p  *tracing.Provider
	tp trace.TracerProvider
}

// newTracer returns the tracing the environment configures (docs/
// operations.md, "Tracing"), or nil.
func newTracer(getenv func(string) string, log *slog.Logger) (*tracer, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	p, err := tracing.FromEnv(context.Background(), getenv, log)
	if p == nil || err != nil {
		return nil, err
	}
	log.Info("tracing on: spans exported over OTLP")
	return &tracer{p: p, tp: p.TracerProvider()}, nil
}

func (t *tracer) tracer() trace.Tracer {
	if t == nil {
		return nil
	}
	return t.tp.Tracer(instrumentation)
}

// logger returns log adding trace_id and span_id to a call's lines.
func (t *tracer) logger(log *slog.Logger) *slog.Logger {
	if t == nil {
		return log
	}
	return slog.New(tracing.LogHandler(log.Handler()))
}

// metrics exports the export queue's counters and turns on exemplars.
func (t *tracer) metrics(m *metrics.Metrics) {
	if t == nil {
		return
	}
	m.Tracing(func() metrics.TraceStats {
		s := t.p.Stats()
		return metrics.TraceStats{Exported: s.Exported, DroppedQueueFull: s.DroppedQueueFull, DroppedExportFailed: s.DroppedExportFailed}
	})
}

// serverOptions is the gRPC ingress's SERVER span per call.
func (t *tracer) serverOptions() []grpc.ServerOption {
	if t == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.tp), otelgrpc.WithPropagators(tracing.Propagator)))}
}

// legacyGRPC is the legacy gRPC upstream's dial options: a CLIENT span per
// call, its context on the call's traceparent.
func (t *tracer) legacyGRPC() []grpc.DialOption {
	if t == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(t.tp), otelgrpc.WithPropagators(tracing.Propagator)))}
}

// legacyHTTP wraps the legacy REST upstream's transport: a CLIENT span per
// request.
func (t *tracer) legacyHTTP() []func(http.RoundTripper) http.RoundTripper {
	if t == nil {
		return nil
	}
	return []func(http.RoundTripper) http.RoundTripper{func(rt http.RoundTripper) http.RoundTripper {
		return otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(t.tp), otelhttp.WithPropagators(tracing.Propagator))
	}}
}

// middleware wraps the REST ingress's handler mw in a SERVER span per
// request.
func (t *tracer) middleware(mw func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	if t == nil {
		return mw
	}
	return func(h http.Handler) http.Handler {
		return otelhttp.NewHandler(mw(h), "figway",
			otelhttp.WithTracerProvider(t.tp), otelhttp.WithPropagators(tracing.Propagator))
	}
}

// shutdown exports the spans still queued, for at most 2s.
func (t *tracer) shutdown() {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	t.p.Shutdown(ctx)
}
