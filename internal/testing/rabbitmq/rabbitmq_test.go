package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/internal/testing/broker"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

func TestMain(m *testing.M) { rabbitmq.Main(m) }

// publishDurable declares durable queue q and publishes a persistent message
// to it, waiting for the broker's confirm.
func publishDurable(t *testing.T, conn *amqp.Connection, q, body string) {
	t.Helper()
	publish(t, conn, q, nil, body)
}

// publish declares durable queue q with args and publishes a persistent
// message to it, waiting for the broker's confirm.
func publish(t *testing.T, conn *amqp.Connection, q string, args amqp.Table, body string) {
	t.Helper()
	if !tryPublish(t, conn, q, args, body) {
		t.Fatal("publisher confirm = nack; want ack")
	}
}

// tryPublish is publish, reporting whether the broker acked the message.
func tryPublish(t *testing.T, conn *amqp.Connection, q string, args amqp.Table, body string) bool {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("Channel: %v", err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
		t.Fatalf("QueueDeclare(%q): %v", q, err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, true, false, amqp.Publishing{
		DeliveryMode: amqp.Persistent,
		Body:         []byte(body),
	})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		t.Fatalf("publisher confirm: %v", err)
	}
	return ok
}

// get takes one message from q; ok is false if q is empty.
func get(t *testing.T, conn *amqp.Connection, q string) (body string, ok bool) {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("Channel: %v", err)
	}
	defer ch.Close()
	d, ok, err := ch.Get(q, true)
	if err != nil {
		t.Fatalf("Get(%q): %v", q, err)
	}
	return string(d.Body), ok
}

func TestPublishConfirmGet(t *testing.T) {
	n := rabbitmq.ForTest(t)
	conn := rabbitmq.Dial(t, n.NewVHost(t))
	publishDurable(t, conn, "durable", "hello")
	if body, ok := get(t, conn, "durable"); !ok || body != "hello" {
		t.Errorf("Get(durable) = %q, %v; want %q, true", body, ok, "hello")
	}
}

func TestURLAndPort(t *testing.T) {
	n := rabbitmq.ForTest(t)
	want := fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.Port())
	if n.URL() != want {
		t.Errorf("URL() = %q; want %q", n.URL(), want)
	}
	if n.Port() == 5672 || n.Port() == 0 {
		t.Errorf("Port() = %d; want a private port", n.Port())
	}
}

func TestCloseAllConnections(t *testing.T) {
	n := rabbitmq.ForTest(t)
	conn := rabbitmq.Dial(t, n.NewVHost(t))
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	begin := time.Now()
	if err := n.CloseAllConnections(context.Background()); err != nil {
		t.Fatalf("CloseAllConnections: %v", err)
	}
	select {
	case err := <-closed:
		if err == nil || err.Code != amqp.ConnectionForced {
			t.Errorf("NotifyClose got %v; want code %d (CONNECTION_FORCED)", err, amqp.ConnectionForced)
		}
		t.Logf("connection closed %v after CloseAllConnections began: %v", time.Since(begin).Round(time.Millisecond), err)
	case <-time.After(10 * time.Second):
		t.Fatal("connection still open 10s after CloseAllConnections")
	}
}

func TestNewVHostIsolates(t *testing.T) {
	n := rabbitmq.ForTest(t)
	urlA, urlB := n.NewVHost(t), n.NewVHost(t)
	if urlA == urlB || urlA == n.URL() {
		t.Fatalf("NewVHost URLs %q, %q; want distinct from each other and from %q", urlA, urlB, n.URL())
	}
	a, b := rabbitmq.Dial(t, urlA), rabbitmq.Dial(t, urlB)
	publishDurable(t, a, "only-in-a", "x")

	ch, err := b.Channel()
	if err != nil {
		t.Fatalf("Channel: %v", err)
	}
	_, err = ch.QueueDeclarePassive("only-in-a", true, false, false, false, nil)
	var amqpErr *amqp.Error
	if !errors.As(err, &amqpErr) || amqpErr.Code != amqp.NotFound {
		t.Errorf("QueueDeclarePassive(only-in-a) in the other vhost: err = %v; want code %d (NOT_FOUND)", err, amqp.NotFound)
	}
	if body, ok := get(t, a, "only-in-a"); !ok || body != "x" {
		t.Errorf("Get(only-in-a) = %q, %v; want %q, true", body, ok, "x")
	}
}

func TestMemoryAlarmBlocksPublishers(t *testing.T) {
	n := rabbitmq.Own(t)
	conn := rabbitmq.Dial(t, n.URL())
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("Channel: %v", err)
	}
	ctx := context.Background()

	begin := time.Now()
	if err := n.SetMemoryHighWatermark(ctx, 0.000001); err != nil {
		t.Fatalf("SetMemoryHighWatermark(0.000001): %v", err)
	}
	// RabbitMQ blocks a connection (and says so) once it publishes under an
	// alarm; a connection that only consumes is left alone. This publish goes
	// into the socket buffer and is not read until the alarm clears.
	if err := ch.PublishWithContext(ctx, "", "nowhere", false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case b := <-blocked:
		if !b.Active {
			t.Fatalf("first NotifyBlocked = %+v; want Active", b)
		}
		t.Logf("connection.blocked %q %v after raising the alarm", b.Reason, time.Since(begin).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatal("no connection.blocked 20s after raising the memory alarm")
	}

	begin = time.Now()
	if err := n.SetMemoryHighWatermark(ctx, 0.4); err != nil {
		t.Fatalf("SetMemoryHighWatermark(0.4): %v", err)
	}
	select {
	case b := <-blocked:
		if b.Active {
			t.Fatalf("second NotifyBlocked = %+v; want not Active", b)
		}
		t.Logf("connection.unblocked %v after clearing the alarm", time.Since(begin).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatal("no connection.unblocked 20s after clearing the memory alarm")
	}
}

func TestKillRestartStop(t *testing.T) {
	n := rabbitmq.Own(t)
	ctx := context.Background()
	conn := rabbitmq.Dial(t, n.URL())
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	publishDurable(t, conn, "survivor", "one")
	publishDurable(t, conn, "survivor", "two")
	// The queue's declaration lives in Mnesia, whose transaction log
	// RabbitMQ does not sync when a queue is declared: killed right away,
	// the node came back without the queue in 2 of some 20 runs (the
	// confirmed messages are synced; the declaration is not; see
	// docs/architecture.md). Sync it, so that what the test checks is the
	// restart on the same directory.
	if out, err := n.Ctl(ctx, "eval", "mnesia:sync_log()."); err != nil {
		t.Fatalf("sync Mnesia's log: %v: %s", err, out)
	}

	begin := time.Now()
	if err := n.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	t.Logf("Kill took %v", time.Since(begin).Round(time.Millisecond))
	select {
	case err := <-closed:
		t.Logf("client saw the crash: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("client connection still open 10s after Kill")
	}
	if err := n.Kill(); err == nil {
		t.Error("Kill of a killed node = nil; want an error")
	}
	if _, err := amqp.Dial(n.URL()); err == nil {
		t.Fatal("Dial after Kill succeeded")
	}

	begin = time.Now()
	if err := n.Restart(ctx); err != nil {
		t.Fatalf("Restart after Kill: %v", err)
	}
	t.Logf("Restart after Kill took %v", time.Since(begin).Round(time.Millisecond))
	if err := n.Restart(ctx); err == nil {
		t.Error("Restart of a running node = nil; want an error")
	}
	conn = rabbitmq.Dial(t, n.URL())
	if body, ok := get(t, conn, "survivor"); !ok || body != "one" {
		t.Errorf("after Kill and Restart, Get(survivor) = %q, %v; want %q, true", body, ok, "one")
	}
	conn.Close()

	begin = time.Now()
	if err := n.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("Stop took %v", time.Since(begin).Round(time.Millisecond))
	if err := n.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v; want nil", err)
	}
	if _, err := n.Ctl(ctx, "status"); err == nil {
		t.Error("Ctl(status) of a stopped node = nil error; want an error")
	}

	begin = time.Now()
	if err := n.Restart(ctx); err != nil {
		t.Fatalf("Restart after Stop: %v", err)
	}
	t.Logf("Restart after Stop took %v", time.Since(begin).Round(time.Millisecond))
	conn = rabbitmq.Dial(t, n.URL())
	if body, ok := get(t, conn, "survivor"); !ok || body != "two" {
		t.Errorf("after Stop and Restart, Get(survivor) = %q, %v; want %q, true", body, ok, "two")
	}
}

func TestExternal(t *testing.T) {
	private := rabbitmq.ForTest(t)
	t.Setenv("FIGWAY_TEST_AMQP_URL", private.URL())
	n := rabbitmq.ForTest(t)
	if n.URL() != private.URL() || n.Port() != private.Port() {
		t.Errorf("external node URL, Port = %q, %d; want %q, %d", n.URL(), n.Port(), private.URL(), private.Port())
	}
	rabbitmq.Dial(t, n.URL())
	ctx := context.Background()
	if _, err := n.Ctl(ctx, "status"); !errors.Is(err, broker.ErrExternal) {
		t.Errorf("Ctl = %v; want ErrExternal", err)
	}
	for name, err := range map[string]error{
		"CloseAllConnections":    n.CloseAllConnections(ctx),
		"SetMemoryHighWatermark": n.SetMemoryHighWatermark(ctx, 0.4),
		"Kill":                   n.Kill(),
		"Restart":                n.Restart(ctx),
		"Stop":                   n.Stop(ctx),
	} {
		if !errors.Is(err, broker.ErrExternal) {
			t.Errorf("%s = %v; want ErrExternal", name, err)
		}
	}
	if err := n.Close(); err != nil {
		t.Errorf("Close = %v; want nil", err)
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"rabbitmq-server", "rabbitmqctl"} {
		script := "#!/bin/sh\necho 'BOOT FAILED: no erlang here' >&2\nexit 3\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("FIGWAY_RABBITMQ_SERVER", filepath.Join(dir, "rabbitmq-server"))
	n, err := broker.Start(context.Background())
	if err == nil {
		n.Close()
		t.Fatal("Start with a failing rabbitmq-server = nil error")
	}
	if !strings.Contains(err.Error(), "BOOT FAILED: no erlang here") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Start error = %v; want the exit status and the node's output", err)
	}
}

// recorder is a testing.TB that records a Skipf or Fatalf instead of ending
// the real test.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper()             {}
func (r *recorder) Cleanup(func())      {}
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Skipf(f string, a ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(f, a...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(f string, a ...any) {
	r.failed, r.msg = true, fmt.Sprintf(f, a...)
	runtime.Goexit()
}

// ownRecorded calls Own with a recorder and returns the recorder once Own
// has returned or ended the test.
func ownRecorded(t *testing.T) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rabbitmq.Own(r)
	}()
	<-done
	return r
}

func TestMissingBroker(t *testing.T) {
	t.Setenv("FIGWAY_RABBITMQ_SERVER", filepath.Join(t.TempDir(), "rabbitmq-server"))
	for _, tc := range []struct {
		ci                  string
		wantSkip, wantFatal bool
	}{
		{ci: "", wantSkip: true},
		{ci: "false", wantSkip: true},
		{ci: "true", wantFatal: true},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := ownRecorded(t)
			if r.skipped != tc.wantSkip || r.failed != tc.wantFatal {
				t.Errorf("Own: skipped, failed = %v, %v; want %v, %v", r.skipped, r.failed, tc.wantSkip, tc.wantFatal)
			}
			for _, want := range []string{"rabbitmq-server is not installed", "apt-get install rabbitmq-server", "make test"} {
				if !strings.Contains(r.msg, want) {
					t.Errorf("message %q does not contain %q", r.msg, want)
				}
			}
		})
	}
}

// TestCluster starts the shared cluster and uses every helper on it: which
// node a connection and a quorum queue's leader are on, closing a
// connection, killing the leader's node (a publish through another node is
// still confirmed, a new leader is elected) and restarting it (it rejoins,
// the queue keeps its messages).
func TestCluster(t *testing.T) {
	begin := time.Now()
	c := rabbitmq.ClusterForTest(t)
	t.Logf("cluster ready after %v", time.Since(begin).Round(time.Millisecond))
	if len(c.Nodes) != rabbitmq.ClusterSize {
		t.Fatalf("cluster has %d nodes; want %d", len(c.Nodes), rabbitmq.ClusterSize)
	}
	urls := c.NewVHost(t)
	u, err := amqp.ParseURI(urls[0])
	if err != nil {
		t.Fatal(err)
	}
	vhost := u.Vhost
	// rabbitmqctl takes seconds a run on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	conns := make([]*amqp.Connection, len(urls))
	for i, url := range urls {
		props := amqp.NewConnectionProperties()
		props.SetClientConnectionName(fmt.Sprintf("conn-%d", i))
		conn, err := amqp.DialConfig(url, amqp.Config{Properties: props})
		if err != nil {
			t.Fatalf("Dial node %d: %v", i, err)
		}
		t.Cleanup(func() { conn.Close() })
		conns[i] = conn
	}
	all, err := c.Connections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]string{} // connection name → pid
	for _, cn := range all {
		if cn.VHost != vhost {
			continue
		}
		pids[cn.Name] = cn.PID
		var i int
		if _, err := fmt.Sscanf(cn.Name, "conn-%d", &i); err != nil || i >= len(c.Nodes) || cn.Node != c.Nodes[i] {
			t.Errorf("connection %q on node %s; want conn-N on node N", cn.Name, nodeName(cn.Node))
		}
	}
	if len(pids) != len(c.Nodes) {
		t.Fatalf("connections to %s: %v; want conn-0..conn-%d", vhost, pids, len(c.Nodes)-1)
	}

	// A quorum queue declared through node 1 has its leader there
	// (queue_leader_locator client-local, the default).
	ch, err := conns[1].Channel()
	if err != nil {
		t.Fatal(err)
	}
	quorum := amqp.Table{"x-queue-type": "quorum"}
	if _, err := ch.QueueDeclare("q", true, false, false, false, quorum); err != nil {
		t.Fatal(err)
	}
	if got, err := c.QueueLeader(ctx, vhost, "q"); err != nil || got != c.Nodes[1] {
		t.Fatalf("QueueLeader = %v, %v; want %s", nodeName(got), err, c.Nodes[1].Name())
	}
	publish(t, conns[0], "q", quorum, "before")

	// Closing node 2's connection: its client is told.
	closed := conns[2].NotifyClose(make(chan *amqp.Error, 1))
	if err := c.CloseConnection(ctx, pids["conn-2"], "test"); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.ConnectionForced {
			t.Errorf("conn-2 closed with %v; want 320 CONNECTION_FORCED", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("conn-2 not closed 10 s after close_connection")
	}

	// Kill the leader's node: a publish through node 0 is confirmed after
	// the election.
	killed := time.Now()
	if err := c.Nodes[1].Kill(); err != nil {
		t.Fatal(err)
	}
	// A publish can be nacked while the election runs: try again.
	nacks := 0
	for !tryPublish(t, conns[0], "q", quorum, "after") {
		if nacks++; nacks > 100 || time.Since(killed) > time.Minute {
			t.Fatalf("publish through node 0 still refused %v after the leader's node was killed", time.Since(killed))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("publish through node 0 confirmed %v after the leader's node was killed (%d nacked before)",
		time.Since(killed).Round(time.Millisecond), nacks)
	if got, err := c.QueueLeader(ctx, vhost, "q"); err != nil || got == c.Nodes[1] {
		t.Errorf("QueueLeader after the kill = %v, %v; want another node", nodeName(got), err)
	}

	restarted := time.Now()
	if err := c.RestartDead(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed node restarted and rejoined in %v", time.Since(restarted).Round(time.Millisecond))
	conn := rabbitmq.Dial(t, urls[1])
	// A nacked message may have been stored all the same: "after" may
	// come more than once.
	for _, want := range []string{"before", "after"} {
		if body, ok := get(t, conn, "q"); !ok || body != want {
			t.Errorf("get through the restarted node = %q, %v; want %q", body, ok, want)
		}
	}
}

func nodeName(n *rabbitmq.Node) string {
	if n == nil {
		return "no node"
	}
	return n.Name()
}
