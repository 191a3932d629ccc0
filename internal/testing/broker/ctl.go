package broker

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// ctlTimeout bounds a rabbitmqctl run whose context has no deadline. One run
// takes about 0.5 s: most of it is starting the CLI's own Erlang VM. A
// two-core machine loaded by parallel test binaries (load average 70) has
// taken over a minute.
const ctlTimeout = 3 * time.Minute

// vhostSeq numbers the virtual hosts of this process, to make names unique.
var vhostSeq atomic.Int64

// Ctl runs `rabbitmqctl -n NODE args...` against the node and returns its
// combined output. The error includes that output. If ctx has no deadline,
// one minute is used.
func (n *Node) Ctl(ctx context.Context, args ...string) (string, error) {
	if n.external {
		return "", ErrExternal
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ctlTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, n.in.ctl, append([]string{"-n", n.name}, args...)...)
	cmd.Dir = n.innerDir
	cmd.Env = n.env()
	cmd.SysProcAttr = chrootAttr(n.in.root)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl -n %s %s: %w: %s", n.name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// CloseAllConnections closes every client connection to the node, in every
// virtual host, with the reason "test" (rabbitmqctl close_all_connections
// --global): clients see a connection.close with 320 CONNECTION_FORCED.
func (n *Node) CloseAllConnections(ctx context.Context) error {
	_, err := n.Ctl(ctx, "close_all_connections", "--global", "test")
	return err
}

// CloseConnection closes the client connections whose client-provided
// name (the connection_name client property) is name, as an operator's
// `rabbitmqctl close_connection` does: each client sees a connection.close
// with 320 CONNECTION_FORCED and reason. It returns how many it closed.
func (n *Node) CloseConnection(ctx context.Context, name, reason string) (int, error) {
	out, err := n.Ctl(ctx, "list_connections", "--no-table-headers", "--silent", "pid", "client_properties")
	if err != nil {
		return 0, err
	}
	// Each line is the pid, as close_connection takes it, a tab, and the
	// client properties as Erlang terms: {"connection_name","NAME"}.
	want := `{"connection_name",` + strconv.Quote(name) + `}`
	closed := 0
	for line := range strings.Lines(out) {
		pid, props, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if !ok || !strings.Contains(props, want) {
			continue
		}
		if _, err := n.Ctl(ctx, "close_connection", pid, reason); err != nil {
			return closed, err
		}
		closed++
	}
	return closed, nil
}

// SetMemoryHighWatermark sets vm_memory_high_watermark to fraction of the
// machine's memory. A fraction below the node's use (0.000001) raises the
// memory alarm: publishing connections receive connection.blocked and the
// broker stops reading from them. RabbitMQ's default, 0.4, clears it. The
// change takes effect at once and lasts until the node restarts.
func (n *Node) SetMemoryHighWatermark(ctx context.Context, fraction float64) error {
	_, err := n.Ctl(ctx, "set_vm_memory_high_watermark", strconv.FormatFloat(fraction, 'f', -1, 64))
	return err
}

// NewVHost creates a virtual host for this test only, gives guest every
// permission on it, and returns the AMQP URL of that virtual host. It is
// deleted, with everything in it, when the test ends. Tests that share a node
// use it to see nothing of each other.
//
// NewVHost needs a private node: on an external one it skips the test, or
// fails it when CI=true.
func (n *Node) NewVHost(t T) string {
	t.Helper()
	if n.external {
		Unavailable(t, fmt.Errorf("NewVHost: %w", ErrExternal))
	}
	name := addVHost(t, n.Ctl, n.Running)
	return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/%s", n.port, url.PathEscape(name))
}

// addVHost creates a virtual host named after the test with ctl, gives guest
// every permission on it, and deletes it when the test ends if alive says
// the broker still runs; a nil alive keeps it. It returns the name.
func addVHost(t T, ctl func(context.Context, ...string) (string, error), alive func() bool) string {
	t.Helper()
	name := fmt.Sprintf("figway-%d-%s", vhostSeq.Add(1), vhostName(t.Name()))
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	if _, err := ctl(ctx, "add_vhost", name); err != nil {
		t.Fatalf("rabbitmqtest: NewVHost: %v", err)
	}
	t.Cleanup(func() {
		if alive == nil || !alive() {
			return // the test stopped or closed its broker: nothing to delete
		}
		ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
		defer cancel()
		if _, err := ctl(ctx, "delete_vhost", name); err != nil {
			t.Errorf("rabbitmqtest: NewVHost cleanup: %v", err)
		}
	})
	if _, err := ctl(ctx, "set_permissions", "-p", name, "guest", ".*", ".*", ".*"); err != nil {
		t.Fatalf("rabbitmqtest: NewVHost: %v", err)
	}
	return name
}

// vhostName turns a test name into something readable in rabbitmqctl output
// and in URLs.
func vhostName(testName string) string {
	b := []byte(testName)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			b[i] = '_'
		}
	}
	if len(b) > 100 {
		b = b[:100]
	}
	return string(b)
}
