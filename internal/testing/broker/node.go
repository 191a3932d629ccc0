package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const (
	// StartTimeout bounds Start and Restart when their context has no
	// deadline. A node starts in 3–8 s; parallel test binaries on a small
	// machine can make it several times slower.
	StartTimeout = 2 * time.Minute
	// stopTimeout is how long Stop waits for a clean stop before it kills.
	stopTimeout = 30 * time.Second
	// logTailLines is how much of console.log a start error carries.
	logTailLines = 40
	// startAttempts is how many times start launches a node, on new
	// ports each time, while its ports turn out to be taken.
	startAttempts = 4
)

// ErrExternal is returned by the methods that control a node when the node
// only wraps FIGWAY_TEST_AMQP_URL.
var ErrExternal = errors.New("rabbitmqtest: node is external (FIGWAY_TEST_AMQP_URL) and cannot be controlled")

// errPortInUse marks a start that failed because a port was taken between
// choosing it and the node binding it; Start retries with new ports.
var errPortInUse = errors.New("port in use")

// portClashes are what console.log says when a node could not bind a
// port: the AMQP listener's error, and the check RabbitMQ makes of the
// distribution port before it starts distribution.
var portClashes = []string{"eaddrinuse", "dist_port_already_used"}

// nodeSeq numbers the nodes of this process, to make node names unique.
var nodeSeq atomic.Int64

// A Node is a RabbitMQ node: a private one started by [Start], or an external
// broker named by FIGWAY_TEST_AMQP_URL ([External]; the tests' rabbitmq.ForTest). Its methods are safe
// for concurrent use.
type Node struct {
	url      string
	port     int
	external bool

	// The rest is set for private nodes only and never changes after Start.
	name     string // figway-test-<pid>-<n>@localhost
	distPort int    // Erlang distribution port
	in       installation
	dir      string // everything of the node lives here
	innerDir string // dir as the node sees it (inside in.root)

	mu     sync.Mutex // serializes start, stop and kill
	proc   *process   // the running VM; nil when stopped
	closed bool
	died   time.Time // when Kill last saw the VM exit
	// serverVersion is the version the broker announced when it last
	// accepted a connection.
	serverVersion string
	// deprecationsAllowed exempts the node from the check for deprecated
	// features (see [Node.AllowDeprecatedFeatures]).
	deprecationsAllowed bool
}

// process is one run of the Erlang VM.
type process struct {
	vm   *os.Process
	done chan struct{} // closed when the VM has exited and been reaped
	err  error         // exit status; set before done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Start launches a private node of the RabbitMQ [Version] with free ports
// and a unique name (figway-test-<pid>-<n>@localhost) in a fresh directory
// (under [os.TempDir], or under the /tmp of RabbitMQ 4.0's root), and
// returns when it accepts AMQP connections. ctx bounds the start only;
// if it has no deadline, 2 minutes is used. Call [Node.Close] when done.
//
// The ports come from [FreePort]. If the node fails because one was taken
// before it bound it, Start launches it again on new ports, up to 4 times
// in all.
func Start(ctx context.Context) (*Node, error) {
	return start(ctx, rand.Text()) // 26 base32 characters, 130 random bits
}

// start is Start with the Erlang cookie to use: nodes that share one can
// be clustered.
func start(ctx context.Context, cookie string) (*Node, error) {
	return startOn(ctx, cookie, freePorts, startAttempts)
}

// freePorts chooses the AMQP and distribution ports of a node.
func freePorts() (amqpPort, distPort int, err error) {
	if amqpPort, err = FreePort(); err != nil {
		return 0, 0, err
	}
	distPort, err = FreePort()
	return amqpPort, distPort, err
}

// startOn is start with the ports chosen by ports, launching the node up
// to attempts times while a port clashes.
func startOn(ctx context.Context, cookie string, ports func() (amqpPort, distPort int, err error), attempts int) (*Node, error) {
	in, err := findInstallation()
	if err != nil {
		return nil, err
	}
	// A chrooted node sees only what is inside its root: its directory
	// must be there.
	parent := ""
	if in.root != "" {
		parent = in.host("/tmp")
		startHostEPMD()
	}
	dir, err := os.MkdirTemp(parent, "figway-rabbitmq-")
	if err != nil {
		return nil, fmt.Errorf("rabbitmqtest: %w", err)
	}
	n := &Node{
		name:     fmt.Sprintf("figway-test-%d-%d@localhost", os.Getpid(), nodeSeq.Add(1)),
		in:       in,
		dir:      dir,
		innerDir: dir,
	}
	if in.root != "" {
		n.innerDir = filepath.Join("/tmp", filepath.Base(dir))
	}
	if err := n.prepareDir(cookie); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		if n.port, n.distPort, err = ports(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("rabbitmqtest: choose ports: %w", err)
		}
		n.url = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.port)
		n.mu.Lock()
		err = n.launch(ctx)
		n.mu.Unlock()
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, errPortInUse) {
			os.RemoveAll(dir)
			return nil, err
		}
		if attempt == attempts {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("rabbitmqtest: a port of the node was taken before it bound it, on each of %d attempts with new ports; the last: %w", attempts, err)
		}
	}
}

// prepareDir writes the files that keep the node away from the machine's
// RabbitMQ configuration: an empty plugin list (starting no plugin halves the
// start time), an empty rabbitmq-env.conf instead of /etc/rabbitmq's, a
// rabbitmq.conf, and an Erlang cookie, found through HOME by the node and
// rabbitmqctl alike. rabbitmq.conf sets the partition handling RabbitMQ
// recommends with quorum queues, pause_minority (a node that loses sight
// of the majority of its cluster stops serving until it sees it again; a
// node alone is its own majority), so that [Cluster.Partition] meets what
// users run.
func (n *Node) prepareDir(cookie string) error {
	files := []struct {
		name string
		data string
		mode os.FileMode
	}{
		{"enabled_plugins", "[].\n", 0o644},
		{"rabbitmq-env.conf", "", 0o644},
		{"rabbitmq.conf", "cluster_partition_handling = pause_minority\n", 0o644},
		{".erlang.cookie", cookie, 0o400},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(n.dir, f.name), []byte(f.data), f.mode); err != nil {
			return fmt.Errorf("rabbitmqtest: %w", err)
		}
	}
	return nil
}

// env is the environment of the node and of rabbitmqctl. Inherited RABBITMQ_*
// variables are dropped so that nothing of the user's broker leaks in.
func (n *Node) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "RABBITMQ_"), k == "HOME", k == "NOTIFY_SOCKET", k == "RUNNING_UNDER_SYSTEMD":
			continue
		}
		env = append(env, kv)
	}
	d := n.innerDir
	return append(env,
		"HOME="+d,
		"RABBITMQ_NODENAME="+n.name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(n.distPort),
		// The distribution listener would otherwise bind every interface.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		"RABBITMQ_MNESIA_BASE="+filepath.Join(d, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(d, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(d, "rabbitmq.pid"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(d, "enabled_plugins"),
		"RABBITMQ_PLUGINS_EXPAND_DIR="+filepath.Join(d, "plugins-expand"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(d, "rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(d, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(d, "advanced.config"),
		// Makes sbin/rabbitmq-server exec erl instead of running it as a
		// child of a signal-forwarding shell, so the VM is our child and
		// SysProcAttr.Pdeathsig applies to it. RabbitMQ 3.10 and 4.0 read
		// this variable only in that script (NOTIFY_SOCKET, which would
		// make it talk to systemd, is removed above).
		"RUNNING_UNDER_SYSTEMD=true",
	)
}

// launch runs the VM and waits until it accepts AMQP connections. n.mu is held.
func (n *Node) launch(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, StartTimeout)
		defer cancel()
	}
	logPath := filepath.Join(n.dir, "console.log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("rabbitmqtest: %w", err)
	}
	// A start error shows (and is judged by) this run's lines only.
	var logFrom int64
	if fi, err := logf.Stat(); err == nil {
		logFrom = fi.Size()
	}
	// Every node connects to the others from an address of its own, so
	// that [Cluster.Partition] can cut it off (see distAddr).
	if err := os.WriteFile(filepath.Join(n.dir, "advanced.config"), []byte(n.advancedConfig()), 0o644); err != nil {
		logf.Close()
		return fmt.Errorf("rabbitmqtest: %w", err)
	}
	fmt.Fprintf(logf, "\n==== rabbitmqtest: starting %s (amqp %d, dist %d) at %s\n",
		n.name, n.port, n.distPort, time.Now().Format(time.RFC3339Nano))

	// With a root, the kernel chroots the child before it executes the
	// script: the path and Dir are inside the root, and the child is
	// still the VM itself (no chroot program in between).
	cmd := exec.Command(n.in.server)
	cmd.Dir = n.innerDir
	cmd.Env = n.env()
	cmd.Stdout = logf // an *os.File: no copying goroutine, no pipe for the VM's children to hold
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr(n.in.root)

	p := &process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// The kernel sends Pdeathsig when the *thread* that forked the child
		// ends, not the process (https://go.dev/issue/27505). Keep this
		// thread, and so the signal, for exactly as long as the VM lives.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer logf.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.vm = cmd.Process
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("rabbitmqtest: start %s: %w", n.in.host(n.in.server), err)
	}
	n.proc = p

	startedAt := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			n.proc = nil
			return n.startError(logFrom, fmt.Errorf("node exited after %v: %v", time.Since(startedAt).Round(time.Millisecond), p.err))
		case <-ctx.Done():
			n.killLocked()
			return n.startError(logFrom, fmt.Errorf("node not accepting AMQP connections after %v: %w", time.Since(startedAt).Round(time.Millisecond), ctx.Err()))
		case <-tick.C:
			if v, ok := n.dialVersion(); ok {
				n.serverVersion = v
				return nil
			}
		}
	}
}

// AcceptsAMQP reports whether guest can open an AMQP connection to the
// node: false while it is down, booting, or paused (pause_minority stops
// its RabbitMQ application and its listeners).
func (n *Node) AcceptsAMQP() bool {
	_, ok := n.dialVersion()
	return ok
}

// dialVersion opens an AMQP connection to the node as guest and returns the
// version the broker announces in it. The handshake gets 10 s: on a machine
// loaded by parallel test binaries a node that had booted took more than
// 2 s to answer it, every time.
func (n *Node) dialVersion() (string, bool) {
	conn, err := amqp.DialConfig(n.url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		return "", false
	}
	defer conn.Close()
	v, _ := conn.Properties["version"].(string)
	return v, true
}

// startError wraps err with the node's name and the tail of what this run
// wrote to its console log, from offset from on. If that says a port was
// taken, the error matches errPortInUse.
func (n *Node) startError(from int64, err error) error {
	tail := logTail(filepath.Join(n.dir, "console.log"), from, logTailLines)
	if slices.ContainsFunc(portClashes, func(s string) bool { return strings.Contains(tail, s) }) {
		err = fmt.Errorf("%w (%w)", err, errPortInUse)
	}
	return fmt.Errorf("rabbitmqtest: node %s: %w\n--- last lines of %s/console.log:\n%s", n.name, err, n.dir, tail)
}

// logTail returns the last lines of a file from offset from on, or why it
// cannot.
func logTail(path string, from int64, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	b = b[min(from, int64(len(b))):]
	const max = 64 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// LogLines returns the lines of the node's own log file (log/<name>.log,
// where a booted node logs) that contain any of subs, the last of them:
// what a test shows of what the node did to a queue.
func (n *Node) LogLines(last int, subs ...string) string {
	b, err := os.ReadFile(filepath.Join(n.dir, "log", n.name+".log"))
	if err != nil {
		return err.Error()
	}
	var ls []string
	for l := range strings.Lines(string(b)) {
		for _, sub := range subs {
			if strings.Contains(l, sub) {
				ls = append(ls, strings.TrimRight(l, "\n"))
				break
			}
		}
	}
	return strings.Join(ls[max(len(ls)-last, 0):], "\n")
}

// LogTail returns the last lines (at most lines) of the node's console
// log, where it writes what it logs: what a test shows of a node that
// misbehaved.
func (n *Node) LogTail(lines int) string {
	return logTail(filepath.Join(n.dir, "console.log"), 0, lines)
}

// URL returns the AMQP URL of the node's default virtual host,
// amqp://guest:guest@127.0.0.1:PORT/ for a private node.
func (n *Node) URL() string { return n.url }

// Name returns the node's Erlang node name, figway-test-<pid>-<n>@localhost
// for a private node ("" for an external one): what rabbitmqctl prints
// where it names a node.
func (n *Node) Name() string { return n.name }

// Port returns the node's AMQP port.
func (n *Node) Port() int { return n.port }

// ServerVersion returns the RabbitMQ version the node announced when it last
// started (4.0.5, 3.10.8, ...), or "" for an external node.
func (n *Node) ServerVersion() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.serverVersion
}

// PID returns the process id of the node's VM (the broker, beam.smp), or 0
// for an external node or one that is not running.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.external || n.proc == nil {
		return 0
	}
	return n.proc.vm.Pid
}

// running reports whether the node's VM is running (always true for an
// external node, which this package cannot observe).
func (n *Node) Running() bool {
	if n.external {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.exited()
}

// Kill kills the node's VM with SIGKILL, as a crash would, and returns once it
// has exited and its AMQP port refuses connections. The data directory stays:
// [Node.Restart] brings the node back.
func (n *Node) Kill() error {
	if n.external {
		return ErrExternal
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.exited() {
		n.proc = nil
		return fmt.Errorf("rabbitmqtest: kill %s: node is not running", n.name)
	}
	n.killLocked()
	// The port closes with the process; poll in case a socket lingers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)), time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("rabbitmqtest: kill %s: port %d still accepts connections", n.name, n.port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killLocked kills the VM (only its own pid: epmd and the VM's helper
// erl_child_setup are not ours to kill, and the latter exits with the VM) and
// waits until it is reaped. n.mu is held.
func (n *Node) killLocked() {
	p := n.proc
	if p == nil {
		return
	}
	p.vm.Kill()
	<-p.done
	n.died = time.Now()
	n.proc = nil
}

// KilledAt returns when the VM killed by the last [Node.Kill] was seen to
// exit: the moment of the crash, as clients of the node live it (Kill
// itself returns later, once the port refuses connections).
func (n *Node) KilledAt() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.died
}

// Restart starts the node again after [Node.Kill] or [Node.Stop], on the same
// ports and data directory, so durable queues and persistent messages
// survive; it returns when the node accepts AMQP connections. ctx bounds the
// start; if it has no deadline, 2 minutes is used.
func (n *Node) Restart(ctx context.Context) error {
	if n.external {
		return ErrExternal
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fmt.Errorf("rabbitmqtest: restart %s: node is closed", n.name)
	}
	if n.proc != nil && !n.proc.exited() {
		return fmt.Errorf("rabbitmqtest: restart %s: node is running; Kill or Stop it first", n.name)
	}
	n.proc = nil
	return n.launch(ctx)
}

// Stop stops the node cleanly and waits for its VM to exit. Stopping a
// stopped node does nothing. If the node has not exited 30 s after being
// asked to, or when ctx ends, it is killed. The data directory stays.
//
// Stop sends SIGTERM, which RabbitMQ 3.10 handles as `rabbitmqctl stop` does
// (rabbit_prelaunch_sighandler: stop every application, then halt), without
// starting a CLI VM.
func (n *Node) Stop(ctx context.Context) error {
	if n.external {
		return ErrExternal
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.proc
	if p == nil {
		return nil
	}
	if err := p.vm.Signal(syscall.SIGTERM); err != nil && !p.exited() {
		n.killLocked()
		return fmt.Errorf("rabbitmqtest: stop %s: %w", n.name, err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		n.proc = nil
		return nil
	case <-timer.C:
		n.killLocked()
		return fmt.Errorf("rabbitmqtest: stop %s: still running after %v; killed", n.name, stopTimeout)
	case <-ctx.Done():
		n.killLocked()
		return fmt.Errorf("rabbitmqtest: stop %s: %w; killed", n.name, ctx.Err())
	}
}

// Close stops the node and removes its directory. Before it removes the
// directory it reads the node's log for deprecated features, which rabbitmq.Main
// reports (see [Node.AllowDeprecatedFeatures]). Close of an external node
// does nothing.
func (n *Node) Close() error {
	if n.external {
		return nil
	}
	err := n.Stop(context.Background())
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if !n.deprecationsAllowed {
		n.checkDeprecations()
	}
	return errors.Join(err, os.RemoveAll(n.dir))
}
