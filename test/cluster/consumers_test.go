package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/internal/testing/calls"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// TestNoConsumerOnQuorumQueue: figway counts the consumers of its quorum
// request queue on the cluster. While two workers serve it, no call is
// refused for want of a consumer; once both have stopped, the route's rpc
// calls fail at once with UNAVAILABLE, "no consumer", instead of waiting
// out their deadline; a worker that comes back is served at once.
func TestNoConsumerOnQuorumQueue(t *testing.T) {
	c := rabbitmq.ClusterForTest(t)
	urls := c.URLs()
	bin := proc.BuildFigway(t)
	fw := startFigway(t, bin, "figway", urls)
	workers := []*sdkWorker{startSDKWorker(t, order(urls, 1), 0, 16), startSDKWorker(t, order(urls, 2), 0, 16)}
	orders := fw.orders()
	// A call starts every 10 ms, whatever the calls before it do, each
	// with a deadline of its own: a call published just as the workers
	// stopped waits for a worker, at most 5 s, and holds up no other.
	call := getOrderCall(orders, "nc")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := calls.Steady(ctx, 10*time.Millisecond, 2000, func(ctx context.Context, seq int) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return call(ctx, 0, seq)
	})

	time.Sleep(3 * time.Second)
	if n := fw.noConsumerRefusals(t); n != 0 {
		t.Errorf("%v calls refused for want of a consumer while two workers served; want 0", n)
	}
	for _, w := range workers {
		w.stop()
	}
	stopped := time.Now()
	time.Sleep(4 * time.Second)
	startSDKWorker(t, order(urls, 1), 0, 16)
	consuming := time.Now()
	time.Sleep(3 * time.Second)
	cancel()
	outs := l.Wait()

	var lastOK, firstRefusal, firstOKAfter time.Time
	refused, timedOut := 0, 0
	for _, o := range outs {
		switch {
		case o.Err == nil && o.End.Before(consuming):
			lastOK = maxTime(lastOK, o.End)
		case o.Err == nil && o.Start.After(consuming):
			if firstOKAfter.IsZero() || o.End.Before(firstOKAfter) {
				firstOKAfter = o.End
			}
		case o.Err != nil && strings.Contains(status.Convert(o.Err).Message(), "no consumer"):
			refused++
			if o.Start.After(stopped) && (firstRefusal.IsZero() || o.End.Before(firstRefusal)) {
				firstRefusal = o.End
			}
		case status.Code(o.Err) == codes.DeadlineExceeded:
			timedOut++
		}
	}
	t.Logf("%d calls: the workers' last reply came %v after the stop began; %d refused for want of a consumer, %d timed out (published as the workers stopped)",
		len(outs), lastOK.Sub(stopped).Round(time.Millisecond), refused, timedOut)
	if firstRefusal.IsZero() {
		t.Fatal("no call was refused for want of a consumer after both workers stopped")
	}
	detected := firstRefusal.Sub(maxTime(lastOK, stopped))
	t.Logf("no consumer detected %v after the last reply (%v after both workers had stopped)",
		detected.Round(time.Millisecond), firstRefusal.Sub(stopped).Round(time.Millisecond))
	if detected > noConsumerWithin {
		t.Errorf("calls refused %v after the last reply; want within %v", detected, noConsumerWithin)
	}
	if firstOKAfter.IsZero() {
		t.Fatal("no call succeeded after a worker came back")
	}
	seen := firstOKAfter.Sub(consuming)
	t.Logf("a returning worker served a call %v after it was consuming", seen.Round(time.Millisecond))
	if seen > 2*time.Second {
		t.Errorf("a returning worker served its first call %v after it was consuming; want within 2s", seen)
	}
}

// noConsumerWithin bounds the time from a route's last reply to its first
// call refused for want of a consumer: a count is not trusted over a
// reply for 1 s (docs/errors.md, "No consumer"), then the refused call
// asks for a fresh count. The bound leaves room for a loaded machine.
const noConsumerWithin = 1500 * time.Millisecond

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
