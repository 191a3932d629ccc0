package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/figway/figway/internal/testing/broker"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// partitionTicktime is the net_ticktime of the cluster during
// TestPartition, in seconds: a silent partition is noticed by the nodes
// between 1 and 1.25 times it after the cut (docs/operations.md, "A
// partitioned node"). RabbitMQ's default, 60, would let the calls through
// the cut-off node wait out their deadline (a minute) before it pauses;
// 2 s made the majority's own link fail on a loaded machine (RabbitMQ
// 3.10: every node paused).
const partitionTicktime = 10

// pausedWithin bounds how long figway's node takes to pause after the
// cut: it notices within 1.25 net_ticktime, then pings each other node,
// each ping lasting net_setuptime (7 s) while packets are dropped, and
// stops its applications — seconds more on a loaded machine. It stays
// below the calls' deadline (a minute).
const pausedWithin = 50 * time.Second

// TestPartition cuts figway's node off from the other two without stopping
// it — iptables rules on loopback drop every packet between its Erlang
// distribution and theirs (rabbitmqtest's Partition), with
// cluster_partition_handling = pause_minority — while 64 callers call a
// plain route, 64 a retry: idempotent route and 16 send events. figway
// cannot tell a silent partition from a slow node: once the nodes notice
// (net_ticktime), figway's node pauses as the minority and closes its
// connection; figway connects to another node within 5 s of that and
// serves through the majority within 10 s; the calls in flight end
// UNAVAILABLE, none at its deadline; the retry: idempotent route sees no
// error. The partition heals 15 s after the pause — late enough for the
// calls published again after the pause to be done: in one run on
// RabbitMQ 3.10 the channel figway had on the majority was lost just
// after the heal, and a call published twice is not published a third
// time. After the heal, every event confirmed to a caller is consumed.
// The duplicates are reported.
func TestPartition(t *testing.T) {
	if !broker.PartitionsEnabled() {
		// On the shared, loaded machine of its first runs it failed in 2
		// of 5 (the node once paused only after a minute, once was not
		// back 90 s after the heal): not yet steady enough for make test.
		t.Skip("set FIGWAY_TEST_PARTITION=1 to run it (as root, with iptables): docs/development.md")
	}
	if broker.Version() == broker.V3_10 {
		// On 3.10.8 the cluster did not recover well from it: once the
		// cut-off node never came back by itself, calls failed for
		// minutes and confirmed events were not consumed within a minute;
		// once it came back after a minute, and the heal closed figway's
		// channel on the majority (docs/operations.md, "A partitioned
		// node"): the broker's fault, not figway's. TestLinksClosed covers
		// 3.10.
		t.Skip("RabbitMQ 3.10 does not recover by itself from a partition that drops packets; TestLinksClosed covers it")
	}
	rabbitmq.NeedPartitions(t)
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
	setup, cancelSetup := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelSetup()
	if err := c.SetNetTicktime(setup, partitionTicktime); err != nil {
		t.Fatal(err)
	}
	// The partition ends with the test, however it ends; then the
	// cluster's net_ticktime is the default again.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := c.Heal(ctx); err != nil {
			t.Errorf("heal: %v", err)
		}
		recoverFromPartition(t, ctx, c, victim, queueOf(t))
		if err := c.SetNetTicktime(ctx, 60); err != nil {
			t.Errorf("net_ticktime back to 60: %v", err)
		}
	})

	load, stop := context.WithCancel(context.Background())
	defer stop()
	ev := newEvents()
	plain := startLoad(load, callers, 1000000, getOrderCall(orders, "get"))
	retried := startLoad(load, callers, 1000000, listOrdersCall(orders, "list"))
	sent := startLoad(load, 16, 1000000, ev.call(orders))
	time.Sleep(2 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cut, err := c.Partition(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, time.Minute, "figway off the partitioned node", func() bool {
		n := fw.node(c)
		return n != nil && n != victim
	})
	movedAt := fw.connectedAt(t).Sub(cut)
	paused := fw.lostAt(t).Sub(cut)
	time.Sleep(time.Until(cut.Add(max(15*time.Second, paused+15*time.Second))))
	healed := time.Since(cut)
	if err := c.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	back, restarted := recoverFromPartition(t, ctx, c, victim, queueOf(t))
	time.Sleep(2 * time.Second)
	stop()
	pouts := plain.wait()
	ps, rs, es := summarize(pouts, cut), summarize(retried.wait(), cut), summarize(sent.wait(), cut)
	lost, dups, _ := ev.lost(w, cut)
	t.Logf("partitioned %s (figway's node; net_ticktime %d s); it closed figway's connection %v after the cut (paused as the minority); figway connected to %s %v after the cut; healed %v after the cut, the queue's members all online %v after the heal%s",
		victim.Name(), partitionTicktime, paused.Round(time.Millisecond), fw.node(c).Name(), movedAt.Round(time.Millisecond), healed.Round(time.Millisecond), back.Round(time.Millisecond), restarted)
	t.Logf("plain route: %v", ps)
	t.Logf("retry: idempotent route: %v", rs)
	t.Logf("events: %v; %d confirmed, %d lost, %d duplicates consumed; the worker ran %d requests more than once", es, len(ev.confirmed), lost, dups, w.redelivered())

	// figway cannot tell a silent partition from a slow node: it moves
	// when its node, seeing itself in the minority, pauses and closes its
	// connection. From then on it must connect to another node within
	// 5 s, and the calls in flight end — well before their deadline (a
	// minute): the node pauses within pausedWithin. The first call served
	// again may wait for the majority itself (on RabbitMQ 3.10 it served
	// nothing for 4.5 s after figway had moved, on a loaded machine):
	// within 10 s of the pause.
	if paused > pausedWithin {
		t.Errorf("figway's node closed its connection %v after the cut; want within %v", paused, pausedWithin)
	}
	if movedAt-paused > 5*time.Second {
		t.Errorf("figway connected to another node %v after its node closed its connection; want within 5s", movedAt-paused)
	}
	for name, s := range map[string]summary{"plain": ps, "retry: idempotent": rs} {
		if s.servedAgain < 0 || s.servedAgain-paused > 10*time.Second {
			t.Errorf("%s route: served again %v after the cut, %v after the node paused; want within 10s of the pause", name, s.servedAgain, s.servedAgain-paused)
		}
		for code, n := range s.codes {
			if code != codes.Unavailable {
				t.Errorf("%s route: %d calls failed with %v (first: %v); want only UNAVAILABLE", name, n, code, s.firstErr)
			}
		}
	}
	if ps.inFlightEnded-paused > 5*time.Second {
		t.Errorf("plain route: a call in flight at the cut ended %v after it, %v after the node paused; want within 5s of the pause, not at its deadline", ps.inFlightEnded, ps.inFlightEnded-paused)
	}
	if rs.failed != 0 {
		t.Errorf("retry: idempotent route: %d calls failed %v (first: %v); want none", rs.failed, rs.codes, rs.firstErr)
	}
	if lost != 0 {
		t.Errorf("%d of %d confirmed events lost; want 0", lost, len(ev.confirmed))
	}
}

// stuckAfterHeal is how long the cut-off node may take to be back once the
// partition has healed before the test restarts it: it usually resumes
// by itself within a minute.
const stuckAfterHeal = 2 * time.Minute

// recoverFromPartition waits until every member of quorum queue name is
// online after the heal, and returns how long that took. The cut-off
// node resumes by itself — but not always: on RabbitMQ 3.10 (Erlang 25)
// it once resumed and never finished its boot (its log stopped after
// global's "Faking nodedown/nodeup"), and on 4.0 it was once not back
// 90 s after the heal, on a loaded machine (docs/operations.md, "A
// partitioned node"). As an operator would, it restarts the node if it is
// not back within stuckAfterHeal, and says so: what the test checks is
// figway's side.
func recoverFromPartition(t *testing.T, ctx context.Context, c *rabbitmq.Cluster, victim *rabbitmq.Node, name string) (time.Duration, string) {
	t.Helper()
	begin := time.Now()
	online := func() bool {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return c.QueueOnline(ctx, name)
	}
	for time.Since(begin) < stuckAfterHeal {
		if online() {
			return time.Since(begin), ""
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := victim.Stop(ctx); err != nil {
		t.Logf("stop %s: %v", victim.Name(), err)
	}
	if err := victim.Restart(ctx); err != nil {
		t.Fatalf("restart %s: %v", victim.Name(), err)
	}
	waitOnline(t, ctx, c, name)
	return time.Since(begin), fmt.Sprintf(" (%s was not back %v after the heal, and was restarted)", victim.Name(), stuckAfterHeal)
}

// lostAt returns the time of figway's last "connection to RabbitMQ lost"
// log line.
func (p *figwayProc) lostAt(t *testing.T) time.Time {
	t.Helper()
	return p.lastLogged(t, "connection to RabbitMQ lost")
}

// connectedAt returns the time of figway's last "connected to RabbitMQ"
// log line.
func (p *figwayProc) connectedAt(t *testing.T) time.Time {
	t.Helper()
	return p.lastLogged(t, "connected to RabbitMQ")
}

// lastLogged returns the time of figway's last log line whose message is
// msg.
func (p *figwayProc) lastLogged(t *testing.T, msg string) time.Time {
	t.Helper()
	var at time.Time
	for _, line := range strings.Split(p.Log.String(), "\n") {
		var m struct {
			Msg  string
			Time time.Time
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Msg == msg {
			at = m.Time
		}
	}
	if at.IsZero() {
		t.Fatalf("figway never logged %q", msg)
	}
	return at
}
