package tracing

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

var _ sdktrace.SpanProcessor = (*queue)(nil)

// queueConfig sizes a queue: at most size spans wait, sent in batches of
// at most batch, at least every delay.
type queueConfig struct {
	size, batch int
	delay       time.Duration
}

// queue is the span processor between figway's spans and the exporter. A
// span that ends goes into a bounded channel, or is dropped and counted
// when the channel is full: the goroutine that ended it never waits for
// the exporter, down or slow as it may be. One goroutine sends the spans
// in batches and counts those the exporter failed to take.
//
// It does what the SDK's batch span processor does, and counts what that
// one drops silently (docs/operations.md, "Tracing").
type queue struct {
	exp   sdktrace.SpanExporter
	cfg   queueConfig
	log   *slog.Logger
	spans chan sdktrace.ReadOnlySpan
	flush chan chan struct{}
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	exported, queueFull, exportFailed atomic.Uint64
	lastFailure                       atomic.Int64 // unix nanoseconds of the last failure logged
}

func newQueue(exp sdktrace.SpanExporter, cfg queueConfig, log *slog.Logger) *queue {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := &queue{exp: exp, cfg: cfg, log: log, spans: make(chan sdktrace.ReadOnlySpan, cfg.size),
		flush: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go q.run()
	return q
}

func (q *queue) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span, or drops and counts it when the queue is
// full. It never blocks.
func (q *queue) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	select {
	case q.spans <- s:
	default:
		q.queueFull.Add(1)
	}
}

func (q *queue) stats() Stats {
	return Stats{Exported: q.exported.Load(), DroppedQueueFull: q.queueFull.Load(), DroppedExportFailed: q.exportFailed.Load()}
}

// run sends batches until Shutdown, then what is left.
func (q *queue) run() {
	defer close(q.done)
	tick := time.NewTicker(q.cfg.delay)
	defer tick.Stop()
	batch := make([]sdktrace.ReadOnlySpan, 0, q.cfg.batch)
	for {
		select {
		case s := <-q.spans:
			if batch = append(batch, s); len(batch) == q.cfg.batch {
				batch = q.export(batch)
			}
		case <-tick.C:
			batch = q.export(batch)
		case ack := <-q.flush:
			batch = q.drain(batch)
			close(ack)
		case <-q.stop:
			q.drain(batch)
			return
		}
	}
}

// drain exports batch and every span queued.
func (q *queue) drain(batch []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	for {
		select {
		case s := <-q.spans:
			if batch = append(batch, s); len(batch) == q.cfg.batch {
				batch = q.export(batch)
			}
		default:
			return q.export(batch)
		}
	}
}

// export sends batch and returns it emptied. The exporter bounds each
// attempt by its own timeout (OTEL_EXPORTER_OTLP_TIMEOUT, 10s by default).
func (q *queue) export(batch []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	if len(batch) == 0 {
		return batch
	}
	if err := q.exp.ExportSpans(context.Background(), batch); err != nil {
		q.exportFailed.Add(uint64(len(batch)))
		q.logFailure(len(batch), err)
	} else {
		q.exported.Add(uint64(len(batch)))
	}
	clear(batch)
	return batch[:0]
}

// logFailure logs a failed export at most once a minute: an exporter that
// is down fails every batch.
func (q *queue) logFailure(n int, err error) {
	now := time.Now().UnixNano()
	last := q.lastFailure.Load()
	if now-last < int64(time.Minute) || !q.lastFailure.CompareAndSwap(last, now) {
		return
	}
	q.log.Warn("spans dropped: the trace exporter failed (logged at most once a minute; figway_trace_spans_dropped_total counts them)",
		"spans", n, "err", err)
}

// ForceFlush exports every span queued, or returns ctx's error.
func (q *queue) ForceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case q.flush <- ack:
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what is queued and stops the exporter, waiting at most
// until ctx is done.
func (q *queue) Shutdown(ctx context.Context) error {
	err := errShutdown
	q.once.Do(func() {
		close(q.stop)
		select {
		case <-q.done:
		case <-ctx.Done():
		}
		err = q.exp.Shutdown(ctx)
	})
	return err
}
