package worker_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/worker"
)

// TestShutdownWaitsForHandlers checks that Run, once cancelled, lets a
// running handler finish and reply before it returns.
func TestShutdownWaitsForHandlers(t *testing.T) {
	t.Parallel()
	url := rabbitmq.ForTest(t).NewVHost(t)
	started, release := make(chan struct{}), make(chan struct{})
	_, stop := startWorker(t, worker.Config{URL: url, Queue: testQueue, Declare: &worker.Queue{}}, func(w *worker.Worker) {
		worker.Handle(w, echoMethod, func(ctx context.Context, req *emptypb.Empty) (*emptypb.Empty, error) {
			close(started)
			<-release
			return req, ctx.Err()
		})
	})
	c := newCaller(t, url)
	id := c.publish(testQueue, request(t, echoMethod, &emptypb.Empty{}))
	<-started

	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned while a handler was running")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	d := c.next()
	if d.CorrelationId != id || d.Headers[wire.HeaderStatus] != nil {
		t.Errorf("reply %q, headers %v; want an OK reply to %q", d.CorrelationId, d.Headers, id)
	}
	<-stopped
}

// TestShutdownGrace checks that once the grace period has passed, Run
// cancels the running handler and returns, and that the requests it did
// not answer — running or prefetched — go back to the queue.
func TestShutdownGrace(t *testing.T) {
	t.Parallel()
	url := rabbitmq.ForTest(t).NewVHost(t)
	started, cancelled := make(chan struct{}, 2), make(chan struct{}, 2)
	const grace = 200 * time.Millisecond
	cfg := worker.Config{URL: url, Queue: testQueue, Declare: &worker.Queue{}, Concurrency: 1, ShutdownGrace: grace}
	_, stop := startWorker(t, cfg, func(w *worker.Worker) {
		worker.Handle(w, echoMethod, func(ctx context.Context, req *emptypb.Empty) (*emptypb.Empty, error) {
			started <- struct{}{}
			<-ctx.Done()
			cancelled <- struct{}{}
			return nil, ctx.Err()
		})
	})
	c := newCaller(t, url)
	c.publish(testQueue, request(t, echoMethod, &emptypb.Empty{}))
	c.publish(testQueue, request(t, echoMethod, &emptypb.Empty{})) // waits for the one slot
	<-started

	begin := time.Now()
	stop()
	if took := time.Since(begin); took < grace || took > grace+5*time.Second {
		t.Errorf("Run returned %v after cancel; want about %v", took, grace)
	}
	select {
	case <-cancelled:
	case <-time.After(waitFor):
		t.Fatal("the running handler's context was not cancelled")
	}
	c.noReply(100 * time.Millisecond)
	ch := channel(t, rabbitmq.Dial(t, url))
	poll.Until(t, waitFor, "both requests are back in the queue", func() bool {
		q, err := ch.QueueDeclarePassive(testQueue, false, false, false, false, nil)
		return err == nil && q.Messages == 2
	})
	if len(started) != 0 {
		t.Error("the second request ran; want it left in the queue")
	}
}
