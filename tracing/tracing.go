// Package tracing sets up figway's OpenTelemetry traces: a tracer provider
// configured by the standard OTEL_* environment variables, exporting over
// OTLP (gRPC or HTTP/protobuf) through the OpenTelemetry SDK's exporters,
// behind a queue that never holds up a call (docs/operations.md, "Tracing").
//
// Tracing is off unless an OTLP endpoint is configured; [FromEnv] then
// returns nil, and figway creates no span and installs no instrumentation:
// a call costs what it did before tracing existed.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Environment variables figway reads itself; the SDK and its exporters read
// the others (endpoint details, headers, timeout, sampler, resource).
const (
	envEndpoint        = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint  = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol        = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol  = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envTracesExporter  = "OTEL_TRACES_EXPORTER"
	envSDKDisabled     = "OTEL_SDK_DISABLED"
	envQueueSize       = "OTEL_BSP_MAX_QUEUE_SIZE"
	envBatchSize       = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
	envScheduleDelayMs = "OTEL_BSP_SCHEDULE_DELAY"
)

// Propagator is the W3C trace context propagator that figway reads a
// caller's traceparent with and writes on messages and legacy calls.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Provider is figway's tracer provider and its export queue.
type Provider struct {
	tp    *sdktrace.TracerProvider
	queue *queue
}

// Stats counts the spans the export queue handled.
type Stats struct {
	// Exported counts the spans the exporter took.
	Exported uint64
	// DroppedQueueFull counts the spans dropped because the queue was full
	// (the exporter down or slow); DroppedExportFailed, those in a batch
	// that the exporter failed to send.
	DroppedQueueFull, DroppedExportFailed uint64
}

// Configured reports whether getenv asks for traces: an OTLP endpoint is set
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), or
// OTEL_TRACES_EXPORTER is otlp; and neither OTEL_SDK_DISABLED=true nor
// OTEL_TRACES_EXPORTER=none says otherwise.
func Configured(getenv func(string) string) bool {
	if strings.EqualFold(getenv(envSDKDisabled), "true") {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(getenv(envTracesExporter))) {
	case "none":
		return false
	case "otlp":
		return true
	}
	return getenv(envEndpoint) != "" || getenv(envTracesEndpoint) != ""
}

// FromEnv returns the Provider the environment configures (getenv is
// os.Getenv outside tests), or nil when it configures none ([Configured]).
// Sampling is parent-based, always sampling a root, unless
// OTEL_TRACES_SAMPLER says otherwise; service.name is "figway" unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES set it. It connects to
// nothing: the exporter dials when it first exports.
func FromEnv(ctx context.Context, getenv func(string) string, log *slog.Logger) (*Provider, error) {
	if !Configured(getenv) {
		return nil, nil
	}
	exp, err := exporter(ctx, getenv)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("figway")),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && res == nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	q := newQueue(exp, queueConfigFromEnv(getenv), log)
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(q))
	return &Provider{tp: tp, queue: q}, nil
}

// exporter returns the OTLP exporter of the protocol the environment
// names: grpc, or http/protobuf (the default, as the OpenTelemetry
// specification has it).
func exporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	proto := getenv(envTracesProtocol)
	if proto == "" {
		proto = getenv(envProtocol)
	}
	switch strings.TrimSpace(proto) {
	case "grpc":
		return otlptracegrpc.New(ctx)
	case "", "http/protobuf":
		return otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("%s=%q: figway exports traces over grpc or http/protobuf", envProtocol, proto)
	}
}

// TracerProvider returns the provider to create figway's tracers from.
func (p *Provider) TracerProvider() trace.TracerProvider { return p.tp }

// Stats returns the export queue's counters.
func (p *Provider) Stats() Stats { return p.queue.stats() }

// Shutdown exports the spans still queued, waiting at most until ctx is
// done, and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error { return p.tp.Shutdown(ctx) }

// queueConfigFromEnv reads the batch settings of the OpenTelemetry
// specification's batch span processor (OTEL_BSP_*), which figway's queue
// follows.
func queueConfigFromEnv(getenv func(string) string) queueConfig {
	c := queueConfig{size: 2048, batch: 512, delay: time.Second}
	if n, err := strconv.Atoi(getenv(envQueueSize)); err == nil && n > 0 {
		c.size = n
	}
	if n, err := strconv.Atoi(getenv(envBatchSize)); err == nil && n > 0 {
		c.batch = n
	}
	if n, err := strconv.Atoi(getenv(envScheduleDelayMs)); err == nil && n > 0 {
		c.delay = time.Duration(n) * time.Millisecond
	}
	c.batch = min(c.batch, c.size)
	return c
}

// errShutdown is what Shutdown of a queue already shut down returns.
var errShutdown = errors.New("tracing: export queue already shut down")
