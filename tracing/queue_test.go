package tracing

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stuckExporter blocks every export until release is closed, or fails.
type stuckExporter struct {
	release chan struct{}
	fail    bool
	got     atomic.Int64
}

func (e *stuckExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	<-e.release
	if e.fail {
		return errors.New("collector down")
	}
	e.got.Add(int64(len(spans)))
	return nil
}

func (e *stuckExporter) Shutdown(context.Context) error { return nil }

// A span ends at once while the exporter hangs; those past the queue's
// room are dropped and counted, the others exported once it answers.
func TestQueueNeverBlocksAndCountsDrops(t *testing.T) {
	exp := &stuckExporter{release: make(chan struct{})}
	q := newQueue(exp, queueConfig{size: 8, batch: 4, delay: 10 * time.Millisecond}, nil)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(q))
	tr := tp.Tracer("test")
	const n = 100
	begin := time.Now()
	for range n {
		_, s := tr.Start(context.Background(), "call")
		s.End()
	}
	took := time.Since(begin)
	t.Logf("%d spans ended in %v with the exporter stuck", n, took)
	if took > 2*time.Second {
		t.Errorf("ending %d spans took %v with the exporter stuck; want no wait", n, took)
	}
	close(exp.release)
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := q.stats()
	if st.Exported+st.DroppedQueueFull != n || st.DroppedQueueFull == 0 || st.Exported != uint64(exp.got.Load()) {
		t.Errorf("stats = %+v, exporter got %d; want exported + queue_full = %d, some dropped", st, exp.got.Load(), n)
	}
}

func TestQueueCountsFailedExports(t *testing.T) {
	exp := &stuckExporter{release: make(chan struct{}), fail: true}
	close(exp.release)
	q := newQueue(exp, queueConfig{size: 64, batch: 16, delay: 10 * time.Millisecond}, nil)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(q))
	for range 20 {
		_, s := tp.Tracer("test").Start(context.Background(), "call")
		s.End()
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := q.stats(); st.DroppedExportFailed != 20 || st.Exported != 0 {
		t.Errorf("stats = %+v; want 20 export_failed", st)
	}
}

func TestConfigured(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}, false},
	} {
		if got := Configured(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("Configured(%v) = %v; want %v", c.env, got, c.want)
		}
	}
}

func TestFromEnvRefusesAnUnknownProtocol(t *testing.T) {
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
	if _, err := FromEnv(context.Background(), func(k string) string { return env[k] }, nil); err == nil {
		t.Error("FromEnv with OTEL_EXPORTER_OTLP_PROTOCOL=http/json succeeded; want an error")
	}
}
