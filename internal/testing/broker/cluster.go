package broker

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClusterStartTimeout bounds StartCluster when its context has no deadline.
// Three nodes start in about 20 s on an idle two-core machine, in parallel;
// the joins take a few rabbitmqctl runs more, each of which starts an
// Erlang VM. A machine loaded by parallel test binaries has taken 1m50s.
const ClusterStartTimeout = 5 * time.Minute

// A Cluster is private nodes joined into one RabbitMQ cluster on loopback.
// Its methods are safe for concurrent use.
type Cluster struct {
	// Nodes are the cluster's nodes; the others joined Nodes[0]. The
	// slice never changes.
	Nodes []*Node
	// cut serializes Partition and Heal, and guards rules.
	cut sync.Mutex
	// rules are the iptables rules of the partitions in force.
	rules [][]string
}

// StartCluster starts size private nodes (as [Start] does, but sharing
// one Erlang cookie), in parallel, and joins every node but the first to the
// first (rabbitmqctl stop_app, reset, join_cluster, start_app). It returns
// when every node is a running member of the cluster. ctx bounds the whole
// start; if it has no deadline, ClusterStartTimeout is used. Call
// [Cluster.Close] when done.
func StartCluster(ctx context.Context, size int) (*Cluster, error) {
	if size < 1 {
		return nil, fmt.Errorf("rabbitmqtest: cluster of %d nodes", size)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ClusterStartTimeout)
		defer cancel()
	}
	c := &Cluster{Nodes: make([]*Node, size)}
	cookie := rand.Text()
	errs := make([]error, size)
	var wg sync.WaitGroup
	for i := range size {
		wg.Go(func() { c.Nodes[i], errs[i] = start(ctx, cookie) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	// Two rabbitmqctl runs per node do what stop_app, reset, join_cluster
	// and start_app would do in four: each run starts a CLI Erlang VM,
	// which takes seconds on a loaded machine. (start_app stays a run of
	// its own: started in the same eval as the join, the app failed now
	// and then with mnesia not yet stopped.) The same calls join RabbitMQ
	// 4.0 nodes: 4.0 keeps its metadata in Mnesia unless the khepri_db
	// feature flag is enabled, which a fresh node does not do.
	join := fmt.Sprintf("ok = rabbit:stop(), ok = rabbit_mnesia:reset(), "+
		"ok = rabbit_mnesia:join_cluster('%s', disc).", c.Nodes[0].name)
	for i, n := range c.Nodes[1:] {
		wg.Go(func() { errs[i+1] = joinNode(ctx, n, c.Nodes[0], join) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, fmt.Errorf("rabbitmqtest: join cluster: %w", err)
	}
	// rabbit:start() after a successful join_cluster starts the node as a
	// member of the cluster: nothing to wait for.
	return c, nil
}

// joinNode runs join (stop, reset, join_cluster) on n and starts its
// RabbitMQ application. On a loaded machine the start has failed now and
// then — Mnesia's own start killed ({killed,{mnesia_app,start,...}}, seen
// on 4.0.5), or no disc schema after the reset (has_no_disc, seen on
// 3.10.8) — so the whole join is tried up to three times.
func joinNode(ctx context.Context, n *Node, first *Node, join string) error {
	var err error
	for try := 0; try < 3; try++ {
		if try > 0 {
			// A failed try may have joined first's view of the cluster
			// but not n's own: the next join_cluster would fail with
			// inconsistent_cluster (seen on 3.10.8), so first forgets n.
			// n's application is stopped first, as forget_cluster_node
			// requires; errors are the next join's to report.
			_, _ = n.Ctl(ctx, "eval", "catch rabbit:stop().")
			forget := fmt.Sprintf("catch rabbit_mnesia:forget_cluster_node('%s', false).", n.name)
			_, _ = first.Ctl(ctx, "eval", forget)
		}
		if _, err = n.Ctl(ctx, "eval", join); err == nil {
			if _, err = n.Ctl(ctx, "start_app"); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
	return err
}

// URLs returns the AMQP URLs of the nodes' default virtual host, in the
// order of Nodes.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return urls
}

// Node returns the node whose Erlang node name or AMQP port is given, or
// nil.
func (c *Cluster) Node(nameOrPort string) *Node {
	for _, n := range c.Nodes {
		if n.name == nameOrPort || strconv.Itoa(n.port) == nameOrPort {
			return n
		}
	}
	return nil
}

// Ctl runs rabbitmqctl against the first running node: most commands see
// and act on the whole cluster.
func (c *Cluster) Ctl(ctx context.Context, args ...string) (string, error) {
	for _, n := range c.Nodes {
		if n.Running() {
			return n.Ctl(ctx, args...)
		}
	}
	return "", errors.New("rabbitmqtest: no node of the cluster is running")
}

// NewVHost creates a virtual host for this test only, as [Node.NewVHost]
// does, and returns its URL on every node, in the order of Nodes. Unlike
// Node.NewVHost it keeps the virtual host when the test ends, until the
// cluster stops: deleting its quorum queues takes every replica a round
// of work, which took minutes on a loaded machine after a test killed and
// restarted a node.
func (c *Cluster) NewVHost(t T) []string {
	t.Helper()
	name := addVHost(t, c.Ctl, nil)
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/%s", n.port, url.PathEscape(name))
	}
	return urls
}

// RestartDead restarts, in parallel, every node that is not running (a
// test killed it); each rejoins the cluster from its data directory.
func (c *Cluster) RestartDead(ctx context.Context) error {
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		if !n.Running() {
			wg.Go(func() { errs[i] = n.Restart(ctx) })
		}
	}
	wg.Wait()
	// A node of a cluster accepts AMQP connections only once it has
	// rejoined: Restart has waited for that.
	return errors.Join(errs...)
}

// A Connection is a client connection as rabbitmqctl list_connections shows
// it.
type Connection struct {
	// PID is the connection's Erlang process id as the plain listing
	// prints it, <figway-test-...@localhost.1.2345.0>: what
	// [Cluster.CloseConnection] takes.
	PID string
	// Node is the node the client is connected to (told apart by the
	// port the client connected to).
	Node  *Node
	VHost string
	// Name is the connection name the client gave (connection_name), or "".
	Name string
}

// Connections lists the client connections of the whole cluster.
func (c *Cluster) Connections(ctx context.Context) ([]Connection, error) {
	out, err := c.Ctl(ctx, "-q", "--no-table-headers", "list_connections", "pid", "port", "vhost", "client_properties")
	if err != nil {
		return nil, err
	}
	var conns []Connection
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(line, "\t", 4)
		if len(f) < 4 {
			continue
		}
		cn := Connection{PID: f[0], Node: c.Node(f[1]), VHost: f[2]}
		// client_properties prints as [{"connection_name","NAME"},...].
		if m := connectionName.FindStringSubmatch(f[3]); m != nil {
			cn.Name = m[1]
		}
		conns = append(conns, cn)
	}
	return conns, nil
}

var connectionName = regexp.MustCompile(`\{"connection_name","([^"]*)"\}`)

// NodeOf returns the node of the only connection to vhost whose name is
// name, or an error if there is none or more than one.
func (c *Cluster) NodeOf(ctx context.Context, vhost, name string) (*Node, error) {
	conns, err := c.Connections(ctx)
	if err != nil {
		return nil, err
	}
	var found []Connection
	for _, cn := range conns {
		if cn.VHost == vhost && cn.Name == name {
			found = append(found, cn)
		}
	}
	if len(found) != 1 || found[0].Node == nil {
		return nil, fmt.Errorf("rabbitmqtest: %d connections named %q to vhost %q: %v", len(found), name, vhost, found)
	}
	return found[0].Node, nil
}

// CloseConnection closes the connection whose PID is pid with reason:
// its client sees a connection.close with 320 CONNECTION_FORCED.
func (c *Cluster) CloseConnection(ctx context.Context, pid, reason string) error {
	_, err := c.Ctl(ctx, "close_connection", pid, reason)
	return err
}

// QueueLeader returns the node that holds the leader of quorum queue name in
// vhost.
func (c *Cluster) QueueLeader(ctx context.Context, vhost, name string) (*Node, error) {
	out, err := c.Ctl(ctx, "-q", "--no-table-headers", "list_queues", "-p", vhost, "name", "leader")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		q, leader, ok := strings.Cut(line, "\t")
		if ok && q == name {
			if n := c.Node(strings.TrimSpace(leader)); n != nil {
				return n, nil
			}
			return nil, fmt.Errorf("rabbitmqtest: queue %q has leader %q, not a node of the cluster", name, leader)
		}
	}
	return nil, fmt.Errorf("rabbitmqtest: no queue %q in vhost %q", name, vhost)
}

// QueueOnline reports whether quorum queue name, in the default virtual
// host, has a member on every node of the cluster, each online
// (rabbitmqctl list_queues members online): what an operator's rolling
// restart waits for before it stops the next node.
func (c *Cluster) QueueOnline(ctx context.Context, name string) bool {
	out, err := c.Ctl(ctx, "-q", "--no-table-headers", "list_queues", "name", "members", "online")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		if len(f) == 3 && f[0] == name {
			return strings.Count(f[1], "@") == len(c.Nodes) && strings.Count(f[2], "@") == len(c.Nodes)
		}
	}
	return false
}

// Partitions returns the network partitions the cluster's running nodes
// record (rabbitmqctl cluster_status, "Network Partitions"): for each node
// that records one, the nodes it was cut off from. RabbitMQ records a
// partition when two nodes that both kept running find each other again
// after each saw the other down: with pause_minority, a partition that
// healed before the cut-off node noticed it was alone and paused. The
// record stays until the nodes of one side restart, and meanwhile a
// metadata change — a queue's declare — is stored only on the side it was
// made on: a full restart of the cluster then loses the queue, and the
// messages in it (docs/operations.md, "A partitioned node").
func (c *Cluster) Partitions(ctx context.Context) (map[string][]string, error) {
	out, err := c.Ctl(ctx, "cluster_status", "--formatter", "json")
	if err != nil {
		return nil, err
	}
	var st struct {
		Partitions map[string][]string `json:"partitions"`
	}
	if i := strings.IndexByte(out, '{'); i >= 0 {
		out = out[i:]
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("rabbitmqtest: cluster_status: %w", err)
	}
	for n, cut := range st.Partitions {
		if len(cut) == 0 {
			delete(st.Partitions, n)
		}
	}
	return st.Partitions, nil
}

// Close stops every node, in parallel, and removes their directories.
func (c *Cluster) Close() error {
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		if n != nil {
			wg.Go(func() { errs[i] = n.Close() })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}
