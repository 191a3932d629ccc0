package broker

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The nodes of a partition are told apart by address. Every node listens
// for distribution on 127.0.0.1 (its own port), and connects to the others
// from an address of its own, distAddr: so iptables rules on loopback can
// drop the traffic between two nodes — both ways, on the connections
// either opened — while rabbitmqctl, which connects from 127.0.0.1,
// still reaches every node, and figway and the workers reach their AMQP
// ports.

// distAddr returns the loopback address n connects to other nodes from:
// 127.1.H.L, where H and L are the bytes of its distribution port, unique
// on the machine while the node runs.
func (n *Node) distAddr() string {
	return fmt.Sprintf("127.1.%d.%d", n.distPort>>8, n.distPort&0xff)
}

// advancedConfig is the node's advanced.config: its outgoing
// distribution connections bind distAddr (kernel's
// inet_dist_connect_options, read at each connection).
func (n *Node) advancedConfig() string {
	ip := strings.ReplaceAll(n.distAddr(), ".", ",")
	return fmt.Sprintf("[{kernel, [{inet_dist_connect_options, [{ip, {%s}}]}]}].\n", ip)
}

// ErrNoIPTables is returned by [Cluster.Partition] when iptables is not
// installed: `make test` installs it (scripts/iptables.sh).
var ErrNoIPTables = errors.New("iptables is not installed (scripts/iptables.sh ensure installs it)")

// Partition cuts n off from the other nodes of the cluster without
// stopping it, as a network would: iptables rules on loopback drop every
// packet between n and each other node's distribution, both ways, and
// nothing else (see distAddr). Nothing is closed: each side notices the
// other gone when its distribution link has been silent for net_ticktime
// (60 s by default, see [Cluster.SetNetTicktime]). With pause_minority
// (see [Start]), n is then the minority: it stops serving clients, closing
// their connections, and the others go on. [Cluster.Heal] removes the
// rules; call it when the test ends, however it ends. Partition returns
// the moment the rules were in.
func (c *Cluster) Partition(ctx context.Context, n *Node) (time.Time, error) {
	c.cut.Lock()
	defer c.cut.Unlock()
	if _, err := exec.LookPath("iptables"); err != nil {
		return time.Time{}, ErrNoIPTables
	}
	for _, o := range c.Nodes {
		if o == n {
			continue
		}
		for _, rule := range cutRules(n, o) {
			if err := iptables(ctx, "-I", rule); err != nil {
				return time.Time{}, fmt.Errorf("rabbitmqtest: partition %s: %w", n.name, err)
			}
			c.rules = append(c.rules, rule)
		}
	}
	return time.Now(), nil
}

// Heal ends every partition of the cluster: it removes the rules
// [Cluster.Partition] added. With pause_minority, the cut-off node
// connects to the others again and resumes serving by itself.
func (c *Cluster) Heal(ctx context.Context) error {
	c.cut.Lock()
	defer c.cut.Unlock()
	var errs []error
	for _, rule := range c.rules {
		if err := iptables(ctx, "-D", rule); err != nil {
			errs = append(errs, err)
		}
	}
	c.rules = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rabbitmqtest: heal: %w", err)
	}
	return nil
}

// cutRules returns the INPUT rules that drop the packets between n and
// o's distribution: those of the connection n opens to o (from n's
// distAddr to o's port, and back) and of the one o opens to n.
func cutRules(n, o *Node) [][]string {
	rule := func(src, dst string, port string, p int) []string {
		return []string{"-i", "lo", "-s", src, "-d", dst, "-p", "tcp", port, strconv.Itoa(p), "-j", "DROP"}
	}
	return [][]string{
		rule(n.distAddr(), "127.0.0.1", "--dport", o.distPort),
		rule("127.0.0.1", n.distAddr(), "--sport", o.distPort),
		rule(o.distAddr(), "127.0.0.1", "--dport", n.distPort),
		rule("127.0.0.1", o.distAddr(), "--sport", n.distPort),
	}
}

// iptables runs `iptables -w 10 op INPUT rule...` (-w: waits for another
// process's iptables to be done with the tables).
func iptables(ctx context.Context, op string, rule []string) error {
	args := append([]string{"-w", "10", op, "INPUT"}, rule...)
	if out, err := exec.CommandContext(ctx, "iptables", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// SetNetTicktime sets net_ticktime, in seconds, on every running node of
// the cluster: how long a silent distribution link takes to be declared
// down (between 1 and 1.25 times it). The change is immediate, with no
// transition period; SetNetTicktime returns once every node reports it.
// Setting 60 back once a test is done gives the next tests the default
// again.
func (c *Cluster) SetNetTicktime(ctx context.Context, seconds int) error {
	var errs []error
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		out, err := n.Ctl(ctx, "eval", fmt.Sprintf("net_kernel:set_net_ticktime(%d, 0), net_kernel:get_net_ticktime().", seconds))
		if err == nil && strings.TrimSpace(out) != strconv.Itoa(seconds) {
			err = fmt.Errorf("rabbitmqtest: %s: net_ticktime is %s; want %d", n.name, strings.TrimSpace(out), seconds)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
