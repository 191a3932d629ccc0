package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/worker"
)

// TestSetupBounded: a broker that takes the worker's connection but never
// answers its basic.consume — here the queue's process is suspended; in a
// rolling restart on RabbitMQ 3.10 a quorum queue electing its leader held
// one for 20 s, with no consumer on the queue — costs the worker one
// setup timeout (10 s) per attempt: it closes that connection, connects
// again, and consumes once the queue answers.
func TestSetupBounded(t *testing.T) {
	t.Parallel()
	node := rabbitmq.Own(t)
	url := node.URL()
	const queue = "setup-bounded"
	ch := channel(t, rabbitmq.Dial(t, url))
	// name, durable, autoDelete, exclusive, noWait, args
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	pid := fmt.Sprintf("begin {ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<\"/\">>, queue, <<%q>>)), amqqueue:get_pid(Q) end", queue)
	sys := func(op string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := node.Ctl(ctx, "eval", fmt.Sprintf("sys:%s(%s).", op, pid)); err != nil {
			t.Fatalf("%s queue %s: %v", op, queue, err)
		}
	}
	sys("suspend")
	var resume sync.Once
	t.Cleanup(func() { resume.Do(func() { sys("resume") }) })

	var log proc.SyncBuffer
	w := worker.New(worker.Config{URL: url, Queue: queue, Logger: slog.New(slog.NewTextHandler(io.MultiWriter(&log, &testWriter{t: t}), nil))})
	(&fixture{}).register(w)
	stop := runWorker(t, w)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("Run = %v; want nil", err)
		}
	}()
	began := time.Now()
	gaveUp := poll.Until(t, 40*time.Second, "the worker gives up a setup that does not end", func() bool {
		return strings.Contains(log.String(), "session setup took over")
	})
	t.Logf("the worker gave up its setup %v after it started", gaveUp.Round(time.Millisecond))
	if w.Stats().Connects != 0 {
		t.Errorf("the worker counts %d connects while its consume was never answered; want 0", w.Stats().Connects)
	}

	resume.Do(func() { sys("resume") })
	poll.Until(t, 40*time.Second, "the worker consumes once the queue answers", func() bool { return w.Stats().Connects > 0 })
	d := newCaller(t, url).call(queue, request(t, echoMethod, wrapperspb.String("x")))
	if d.Headers[wire.HeaderStatus] != nil {
		t.Fatalf("Echo failed: %v", d.Headers)
	}
	t.Logf("served %v after the worker started", time.Since(began).Round(time.Millisecond))
}
