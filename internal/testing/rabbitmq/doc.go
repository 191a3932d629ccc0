// Package rabbitmq runs private RabbitMQ nodes for tests: a real broker,
// never a mock.
//
// # Getting a broker
//
// Most package tests share one node per test binary, started lazily by
// [ForTest] and stopped by [Shutdown] from TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		rabbitmq.Shutdown()
//		os.Exit(code)
//	}
//
//	func TestPublish(t *testing.T) {
//		url := rabbitmq.ForTest(t).URL()
//		...
//	}
//
// Tests that share the node isolate themselves with [Node.NewVHost], which
// creates a fresh virtual host that is deleted when the test ends.
//
// A test that kills, restarts or alarms its broker takes a node of its own
// with [Own]; the node is closed by t.Cleanup.
//
// If FIGWAY_TEST_AMQP_URL is set, [ForTest] returns a node that only wraps that
// URL: [Node.Ctl] and every method built on it return [ErrExternal], and
// [Node.NewVHost] treats the missing control as an unavailable broker (below).
//
// # Which RabbitMQ
//
// The environment variable FIGWAY_TEST_RABBITMQ chooses the version every
// node of the process runs ([Version]), so that every test runs unchanged on
// either:
//
//   - "3.10" (or unset): the machine's own rabbitmq-server package, Debian
//     12's RabbitMQ 3.10.
//   - "4.0": Debian 13's RabbitMQ 4.0, installed by `scripts/rabbitmq.sh
//     ensure` in a minimal Debian 13 root outside the checkout
//     ($FIGWAY_RABBITMQ_CACHE/rabbitmq-4.0, by default
//     /var/cache/figway/rabbitmq-4.0) and run there chrooted: the node's
//     directory is under the root's /tmp, the kernel chroots the child
//     before the script runs (so the VM is still the child: Kill, Stop and
//     the parent-death signal work as on 3.10), and [Node.Ctl] runs the
//     root's rabbitmqctl the same way. Needs root. Clusters join with the
//     same calls on both versions.
//
// Any other value fails the test. [Node.ServerVersion] is the exact version
// the broker announced.
//
// # Deprecated features
//
// RabbitMQ 4 logs a warning when a client uses a deprecated feature
// (transient non-exclusive queues, global QoS, ...). [Node.Close] reads the
// node's log for them, and [Main] fails the test binary, naming each
// feature, if any node logged one. A test that uses one on purpose takes a
// node of its own and calls [Node.AllowDeprecatedFeatures];
// [Node.DeprecatedFeatures] reads the log at any time.
//
// # When there is no broker
//
// If the broker cannot be had (rabbitmq-server is not installed, RabbitMQ
// 4.0's root is not prepared, or the node did not start), [ForTest], [Own] and [Node.NewVHost] skip the test, with a
// message that names what is missing and how to install it. When the
// environment variable CI is "true", they fail the test instead, so a CI run
// can never pass by skipping every broker test.
//
// # How a node runs
//
// [Start] runs the rabbitmq-server script of the installed RabbitMQ as the
// current user, with every path (data, logs, pid file, plugins, config,
// HOME and so the Erlang cookie) inside a fresh directory under
// [os.TempDir], an AMQP listener on 127.0.0.1 and free ports for AMQP and
// Erlang distribution, chosen by [FreePort] outside the kernel's ephemeral
// port range (and chosen again if the node finds one taken). It does not
// use the Debian wrapper /usr/sbin/rabbitmq-server, which switches to the
// rabbitmq user through su: through su the broker is no longer a child of
// the test binary and cannot be tied to its life. Instead the Erlang VM
// replaces the script's shell (it runs with RUNNING_UNDER_SYSTEMD=true,
// which makes the script exec erl), in a process group of its own; on
// Linux the kernel kills it with SIGKILL when the test binary dies, however
// it dies, so a crashed test leaves no broker behind.
//
// Nodes never use port 5672, the default node name or the default data
// directory, so they neither see nor disturb a broker the distribution may
// have started. The epmd daemon is shared by every Erlang node on the
// machine; this package starts it implicitly (the VM does) and never stops
// it.
//
// The node's output (it includes the broker's log) goes to console.log in its
// directory; when a start fails, the error ends with the last lines of it.
//
// The environment variable FIGWAY_RABBITMQ_SERVER names a rabbitmq-server
// script of the machine to use whatever the version; otherwise RabbitMQ 3.10's
// is looked up in PATH and then in /usr/sbin and /usr/local/sbin.
package rabbitmq
