package rabbitmq

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/internal/testing/broker"
)

// Node and Cluster are broker's: this package hands them to tests.
type (
	Node    = broker.Node
	Cluster = broker.Cluster
)

// shared is the node ForTest hands out, one per test binary.
var shared struct {
	mu   sync.Mutex
	node *Node
	err  error // why the node could not be had; not retried
}

// ForTest returns a node for package tests.
//
// If FIGWAY_TEST_AMQP_URL is set, it returns a node that wraps that URL; the
// methods that control a node then return [ErrExternal]. Otherwise it returns
// a private node shared by every test of the binary, started by the first
// call (and started again if it has died since); call [Shutdown] from
// TestMain to stop it.
//
// If no broker can be had, ForTest skips the test, or fails it when CI=true,
// with a message naming what is missing and how to install it.
func ForTest(t testing.TB) *Node {
	t.Helper()
	if u := os.Getenv("FIGWAY_TEST_AMQP_URL"); u != "" {
		n, err := broker.External(u)
		if err != nil {
			t.Fatalf("rabbitmqtest: FIGWAY_TEST_AMQP_URL: %v", err)
		}
		return n
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.err != nil {
		broker.Unavailable(t, shared.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), broker.StartTimeout)
	defer cancel()
	switch {
	case shared.node == nil:
		begin := time.Now()
		n, err := broker.Start(ctx)
		if err != nil {
			shared.err = err
			broker.Unavailable(t, err)
		}
		shared.node = n
		t.Logf("rabbitmqtest: shared node %s (RabbitMQ %s) on port %d started in %v", n.Name(), n.ServerVersion(), n.Port(), time.Since(begin).Round(time.Millisecond))
	case !shared.node.Running():
		begin := time.Now()
		if err := shared.node.Restart(ctx); err != nil {
			shared.err = err
			broker.Unavailable(t, err)
		}
		t.Logf("rabbitmqtest: shared node %s had died; restarted in %v", shared.node.Name(), time.Since(begin).Round(time.Millisecond))
	}
	return shared.node
}

// sharedCluster is the cluster ClusterForTest hands out, one per test binary.
var sharedCluster struct {
	mu      sync.Mutex
	cluster *Cluster
	err     error // why the cluster could not be had; not retried
}

// ClusterSize is the number of nodes of the cluster [ClusterForTest] starts.
const ClusterSize = 3

// ClusterForTest returns a cluster of [ClusterSize] private nodes shared by
// every test of the binary, started by the first call; a later call first
// restarts any node a test killed and left dead. [Shutdown] stops it. Tests
// that share it isolate themselves with [Cluster.NewVHost], and restart the
// nodes they kill before they end ([Cluster.RestartDead]).
//
// Like [ForTest], it skips the test if no broker can be had, or fails it
// when CI=true. It ignores FIGWAY_TEST_AMQP_URL.
func ClusterForTest(t testing.TB) *Cluster {
	t.Helper()
	sharedCluster.mu.Lock()
	defer sharedCluster.mu.Unlock()
	if sharedCluster.err != nil {
		broker.Unavailable(t, sharedCluster.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), broker.ClusterStartTimeout)
	defer cancel()
	begin := time.Now()
	if sharedCluster.cluster == nil {
		c, err := broker.StartCluster(ctx, ClusterSize)
		if err != nil {
			sharedCluster.err = err
			broker.Unavailable(t, err)
		}
		sharedCluster.cluster = c
		t.Logf("rabbitmqtest: shared %d-node cluster (RabbitMQ %s) started in %v", ClusterSize, c.Nodes[0].ServerVersion(), time.Since(begin).Round(time.Millisecond))
		return c
	}
	c := sharedCluster.cluster
	for _, n := range c.Nodes {
		if !n.Running() {
			if err := c.RestartDead(ctx); err != nil {
				sharedCluster.err = err
				broker.Unavailable(t, err)
			}
			t.Logf("rabbitmqtest: restarted the cluster's dead nodes in %v", time.Since(begin).Round(time.Millisecond))
			break
		}
	}
	return c
}

// Own starts a private node for this test alone, for tests that kill,
// restart or alarm their broker, and closes it when the test ends. Like
// [ForTest], it skips the test if no broker can be had, or fails it when
// CI=true. It ignores FIGWAY_TEST_AMQP_URL.
func Own(t testing.TB) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), broker.StartTimeout)
	defer cancel()
	begin := time.Now()
	n, err := broker.Start(ctx)
	if err != nil {
		broker.Unavailable(t, err)
	}
	t.Logf("rabbitmqtest: node %s (RabbitMQ %s) on port %d started in %v", n.Name(), n.ServerVersion(), n.Port(), time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("rabbitmqtest: %v", err)
		}
	})
	return n
}

// Shutdown stops the node started by [ForTest] and the cluster started by
// [ClusterForTest], and removes their directories. Call it from TestMain
// after m.Run. A later ForTest or ClusterForTest starts afresh.
func Shutdown() {
	sharedCluster.mu.Lock()
	if sharedCluster.cluster != nil {
		if err := sharedCluster.cluster.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	sharedCluster.cluster, sharedCluster.err = nil, nil
	sharedCluster.mu.Unlock()

	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.node != nil {
		if err := shared.node.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	shared.node, shared.err = nil, nil
}

// Dial returns a new connection to url, closed when the test ends.
func Dial(t testing.TB, url string) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Channel returns a channel on a new connection to url; the connection is
// closed when the test ends.
func Channel(t testing.TB, url string) *amqp.Channel {
	t.Helper()
	ch, err := Dial(t, url).Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// NeedPartitions skips t, or fails it when CI=true, unless partitions can
// be made here: iptables installed, and run as root.
func NeedPartitions(t testing.TB) {
	t.Helper()
	var err error
	if _, lerr := exec.LookPath("iptables"); lerr != nil {
		err = broker.ErrNoIPTables
	} else if out, lerr := exec.Command("iptables", "-w", "10", "-S", "INPUT").CombinedOutput(); lerr != nil {
		err = fmt.Errorf("iptables -S INPUT: %v: %s", lerr, out)
	}
	if err == nil {
		return
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("rabbitmqtest: no partitions here: %v (CI=true: fails instead of skipping)", err)
	}
	t.Skipf("rabbitmqtest: no partitions here: %v (the test is skipped; with CI=true it would fail)", err)
}
