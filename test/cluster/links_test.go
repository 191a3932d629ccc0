package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/figway/figway/internal/testing/rabbitmq"
)

// TestLinksClosed cuts figway's node off from the other two without
// stopping it, at the Erlang distribution level (rabbitmqtest's
// CloseLinks: the links closed and refused, so that both sides see the
// other down at once; cluster_partition_handling = pause_minority): its
// node pauses as the minority at once and closes figway's connection. It
// heals the cut 10 s later, after which the node resumes by itself
// (split.run says what it checks). TestPartition drops packets instead,
// as a network does.
func TestLinksClosed(t *testing.T) {
	split{
		how:       "closed the links of",
		cut:       (*rabbitmq.Cluster).CloseLinks,
		heal:      (*rabbitmq.Cluster).OpenLinks,
		healAfter: 10 * time.Second,
		recover: func(t *testing.T, ctx context.Context, c *rabbitmq.Cluster, _ *rabbitmq.Node) (time.Duration, string) {
			return waitOnline(t, ctx, c, queueOf(t)), ""
		},
		movedWithin:  splitBound,
		servedWithin: splitBound,
	}.run(t)
}
