package broker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// CloseLinks cuts n off from the other nodes of the cluster at the Erlang
// distribution level, without stopping it: the distribution links between
// n and each of them are closed, and n uses a wrong cookie with each from
// then on (erlang:set_cookie/2), so that neither side can connect to the
// other again — while n's own listeners, and rabbitmqctl (whose nodes keep
// the right cookie), still work. Unlike [Cluster.Partition], both sides
// see the other down at once, as when a node's peer crashes: RabbitMQ 3.10
// recovers from this one by itself, and not reliably from a partition
// that drops packets (docs/operations.md, "A partitioned node").
// [Cluster.OpenLinks] gives n the right cookie back. CloseLinks returns
// the moment of the cut, as the node's clock read it: rabbitmqctl takes
// seconds to start on a loaded machine.
func (c *Cluster) CloseLinks(ctx context.Context, n *Node) (time.Time, error) {
	c.cut.Lock()
	defer c.cut.Unlock()
	others := c.othersOf(n)
	out, err := n.Ctl(ctx, "eval", fmt.Sprintf(
		"Bad = 'figway-test-partitioned', Others = [%s], "+
			"[erlang:set_cookie(O, Bad) || O <- Others], "+
			"At = os:system_time(microsecond), "+
			"[erlang:disconnect_node(O) || O <- Others], At.", others))
	if err != nil {
		return time.Time{}, fmt.Errorf("rabbitmqtest: close links of %s: %w", n.name, err)
	}
	us, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("rabbitmqtest: close links of %s: the node's time %q: %w", n.name, out, err)
	}
	return time.UnixMicro(us), nil
}

// OpenLinks undoes [Cluster.CloseLinks]: n uses the cluster's cookie with
// the other nodes again and connects to them. With pause_minority, n then
// resumes serving by itself.
func (c *Cluster) OpenLinks(ctx context.Context, n *Node) error {
	c.cut.Lock()
	defer c.cut.Unlock()
	others := c.othersOf(n)
	_, err := n.Ctl(ctx, "eval", fmt.Sprintf(
		"C = erlang:get_cookie(), Others = [%s], "+
			"[erlang:set_cookie(O, C) || O <- Others], "+
			"[net_adm:ping(O) || O <- Others], ok.", others))
	if err != nil {
		return fmt.Errorf("rabbitmqtest: open links of %s: %w", n.name, err)
	}
	return nil
}

// othersOf returns the names of the cluster's nodes other than n, as an
// Erlang list's elements.
func (c *Cluster) othersOf(n *Node) string {
	var names []string
	for _, o := range c.Nodes {
		if o != n {
			names = append(names, "'"+o.name+"'")
		}
	}
	return strings.Join(names, ", ")
}
