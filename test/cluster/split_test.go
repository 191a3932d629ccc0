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

// A split cuts figway's node off from the other two without stopping it,
// and heals the cut healAfter later: what TestPartition and
// TestLinksClosed share.
type split struct {
	// how the cut is made, in the test's log: "partitioned", "closed the
	// links of".
	how  string
	cut  func(*rabbitmq.Cluster, context.Context, *rabbitmq.Node) (time.Time, error)
	heal func(*rabbitmq.Cluster, context.Context, *rabbitmq.Node) error
	// setup, if set, prepares the cluster before figway starts.
	setup func(*testing.T, *rabbitmq.Cluster)
	// healAfter is the least time from the cut to the heal; the cut also
	// lasts until both rpc routes have served a call made after it.
	healAfter time.Duration
	// hold, if set, holds the cut until the cluster has done what a cut
	// of this kind makes it do.
	hold func(*testing.T, *rabbitmq.Cluster, *rabbitmq.Node, time.Time)
	// recover waits, after the heal, until the members of the test's
	// queue are all online, and returns how long that took and anything
	// it did to get there.
	recover func(*testing.T, context.Context, *rabbitmq.Cluster, *rabbitmq.Node) (time.Duration, string)
	// movedWithin bounds the time from the cut to figway's connection to
	// another node, and to the end of the plain route's calls in flight.
	movedWithin time.Duration
	// servedWithin bounds the time from the cut to the first call that
	// started after it and succeeded, on either rpc route.
	servedWithin time.Duration
}

// splitBound is the "within 5 s".
const splitBound = 5 * time.Second

// run runs figway on node 0 of the cluster, with broker.urls in the
// cluster's order, and an SDK worker pool on node 1, while 64 callers
// call a plain route, 64 a retry: idempotent route and 16 send events;
// it cuts node 0 off, heals the cut once both rpc routes were served
// through the majority, healAfter has passed and hold has returned,
// recovers (leaving the cluster with no partition recorded), lets the load
// run until both routes serve calls made after the heal, and checks what
// callers saw: figway
// connected to another node within movedWithin of the cut, and served
// again within servedWithin; the plain route's calls in flight ended
// within movedWithin (UNAVAILABLE), and no call at its deadline (a
// minute); the retry:
// idempotent route saw no error;
// after the heal, every event confirmed to a caller was consumed. The
// duplicates are logged.
func (sp split) run(t *testing.T) {
	c := rabbitmq.ClusterForTest(t)
	if sp.setup != nil {
		sp.setup(t, c)
	}
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
	// The cut ends with the test, however it ends.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := sp.heal(c, ctx, victim); err != nil {
			t.Errorf("heal: %v", err)
		}
	})

	m := startMixedLoad(orders)
	defer m.stop()
	plain, retried, sent, ev := m.plain, m.retried, m.sent, m.ev

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cut, err := sp.cut(c, ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, time.Minute, "figway off the cut-off node", func() bool {
		n := fw.node(c)
		return n != nil && n != victim
	})
	moved := fw.connectedAt(t).Sub(cut)
	poll.Until(t, 90*time.Second, "both rpc routes served through the majority", func() bool {
		return plain.ServedSince(cut) && retried.ServedSince(cut)
	})
	time.Sleep(time.Until(cut.Add(sp.healAfter)))
	if sp.hold != nil {
		sp.hold(t, c, victim, cut)
	}
	healed := time.Now()
	if err := sp.heal(c, ctx, victim); err != nil {
		t.Fatal(err)
	}
	back, recovered := sp.recover(t, ctx, c, victim)
	recovered += clearPartition(t, ctx, c, victim)
	// The load goes on until both rpc routes serve calls made after the
	// heal: the calls that wait for the cluster to recover end first.
	poll.Until(t, 90*time.Second, "both rpc routes served after the heal", func() bool {
		return plain.ServedSince(healed) && retried.ServedSince(healed)
	})
	time.Sleep(2 * time.Second)
	m.stop()
	ps, rs, es := summarize(plain.Wait(), cut), summarize(retried.Wait(), cut), summarize(sent.Wait(), cut)
	lost, dups, _ := ev.lost(w, cut)
	t.Logf("%s %s (figway's node); figway left it %v after the cut (%s) and connected to %s %v after the cut; healed %v after the cut, the queue's members all online %v after the heal%s",
		sp.how, victim.Name(), fw.lostAt(t).Sub(cut).Round(time.Millisecond), fw.lostReason(t), fw.node(c).Name(),
		moved.Round(time.Millisecond), healed.Sub(cut).Round(time.Millisecond), back.Round(time.Millisecond), recovered)
	t.Logf("plain route: %v", ps)
	t.Logf("retry: idempotent route: %v", rs)
	t.Logf("events: %v; %d confirmed, %d lost, %d duplicates consumed", es, len(ev.confirmed), lost, dups)
	t.Logf("the worker ran %d rpc requests, %d more than once; figway_broker_stalls_total %v, figway_broker_channels_stuck_total %v, figway_broker_channels_renewed_total %v, figway_replies_unmatched_total %v; figway after the cut:%s",
		w.ran(), w.redelivered(), fw.metric(t, "figway_broker_stalls_total"), fw.metric(t, "figway_broker_channels_stuck_total"),
		fw.metric(t, "figway_broker_channels_renewed_total"), fw.metric(t, "figway_replies_unmatched_total"), fw.timeline(cut))

	if moved > sp.movedWithin {
		t.Errorf("figway connected to another node %v after the cut; want within %v", moved, sp.movedWithin)
	}
	for name, s := range map[string]summary{"plain": ps, "retry: idempotent": rs} {
		if s.servedAgain < 0 || s.servedAgain > sp.servedWithin {
			t.Errorf("%s route: served again %v after the cut; want within %v", name, s.servedAgain, sp.servedWithin)
		}
		for code, n := range s.codes {
			if code != codes.Unavailable {
				t.Errorf("%s route: %d calls failed with %v (first: %v); want only UNAVAILABLE", name, n, code, s.firstErr)
			}
		}
	}
	if ps.inFlightEnded > sp.movedWithin {
		t.Errorf("plain route: a call in flight at the cut ended %v after it; want within %v, not at its deadline", ps.inFlightEnded, sp.movedWithin)
	}
	if rs.failed != 0 {
		t.Errorf("retry: idempotent route: %d calls failed %v (first: %v); want none", rs.failed, rs.codes, rs.firstErr)
	}
	if lost != 0 {
		t.Errorf("%d of %d confirmed events lost; want 0", lost, len(ev.confirmed))
	}
}
