package cluster_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// TestLinksClosed cuts figway's node off from the other two without
// stopping it, at the Erlang distribution level (rabbitmqtest's
// CloseLinks: the links closed and refused, so that both sides see the
// other down at once; cluster_partition_handling = pause_minority), while
// 64 callers call a plain route, 64 a retry: idempotent route and 16 send
// events; it heals the partition 10 s later. figway, whose node stops
// serving as the minority, serves through the majority within 5 s; the
// calls in flight end at once (UNAVAILABLE), none at its deadline; the
// retry: idempotent route sees no error; after the heal, every event
// confirmed to a caller is consumed. The duplicates are reported.
// TestPartition drops packets instead, as a network does.
func TestLinksClosed(t *testing.T) {
	c := rabbitmq.ClusterForTest(t)
	urls := c.URLs()
	bin := proc.BuildFigway(t)
	fw := startFigway(t, bin, "figway", urls)
	victim := fw.node(c)
	if victim != c.Nodes[0] {
		t.Fatalf("figway on %v; want node 0", victim)
	}
	w := startSDKWorker(t, order(urls, 1), 0, 64)
	orders := fw.orders()
	restartAfter(t, c)
	// The partition ends with the test, however it ends.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := c.OpenLinks(ctx, victim); err != nil {
			t.Errorf("heal: %v", err)
		}
	})

	load, stop := context.WithCancel(context.Background())
	defer stop()
	ev := newEvents()
	plain := startLoad(load, callers, 1000000, getOrderCall(orders, "get"))
	retried := startLoad(load, callers, 1000000, listOrdersCall(orders, "list"))
	sent := startLoad(load, 16, 1000000, ev.call(orders))
	time.Sleep(2 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cut, err := c.CloseLinks(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, time.Minute, "figway off the partitioned node", func() bool {
		n := fw.node(c)
		return n != nil && n != victim
	})
	movedAt := fw.connectedAt(t).Sub(cut)
	time.Sleep(time.Until(cut.Add(10 * time.Second)))
	if err := c.OpenLinks(ctx, victim); err != nil {
		t.Fatal(err)
	}
	back := waitOnline(t, ctx, c, queueOf(t))
	time.Sleep(2 * time.Second)
	stop()
	pouts := plain.wait()
	ps, rs, es := summarize(pouts, cut), summarize(retried.wait(), cut), summarize(sent.wait(), cut)
	lost, dups, _ := ev.lost(w, cut)
	t.Logf("closed the links of %s (figway's node); figway connected to %s %v later; healed 10 s after the cut, the queue's members all online %v after the heal",
		victim.Name(), fw.node(c).Name(), movedAt.Round(time.Millisecond), back.Round(time.Millisecond))
	t.Logf("plain route: %v", ps)
	t.Logf("retry: idempotent route: %v", rs)
	t.Logf("events: %v; %d confirmed, %d lost, %d duplicates consumed; the worker ran %d requests more than once", es, len(ev.confirmed), lost, dups, w.redelivered())

	if movedAt > 5*time.Second {
		t.Errorf("figway connected to another node %v after the cut; want within 5s", movedAt)
	}
	for name, s := range map[string]summary{"plain": ps, "retry: idempotent": rs} {
		if s.servedAgain < 0 || s.servedAgain > 5*time.Second {
			t.Errorf("%s route: served again %v after the cut; want within 5s", name, s.servedAgain)
		}
		for code, n := range s.codes {
			if code != codes.Unavailable {
				t.Errorf("%s route: %d calls failed with %v (first: %v); want only UNAVAILABLE", name, n, code, s.firstErr)
			}
		}
	}
	if ps.inFlightEnded > 5*time.Second {
		t.Errorf("plain route: a call in flight at the cut ended %v after it; want within 5s, not at its deadline", ps.inFlightEnded)
	}
	if rs.failed != 0 {
		t.Errorf("retry: idempotent route: %d calls failed %v (first: %v); want none", rs.failed, rs.codes, rs.firstErr)
	}
	if lost != 0 {
		t.Errorf("%d of %d confirmed events lost; want 0", lost, len(ev.confirmed))
	}
}
