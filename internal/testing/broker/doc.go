// Package broker starts private RabbitMQ nodes and clusters on loopback,
// for figway's tests (through package rabbitmq, which hands them out) and
// for make bench. It does not import testing: a program may link it. The
// methods that take a test take a [T], the part of testing.TB they use.
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
// Any other value fails the test ([Unavailable]). [Node.ServerVersion] is the exact version
// the broker announced.
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
package broker
