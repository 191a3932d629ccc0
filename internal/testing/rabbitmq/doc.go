// Package rabbitmq hands private RabbitMQ nodes to tests: a real broker,
// never a mock. It is the tests' side of package broker, which starts them.
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
// # Which RabbitMQ, and how a node runs
//
// Nodes and clusters are package broker's ([broker.Start],
// [broker.StartCluster]): it imports no testing, so that make bench can
// start a node too. FIGWAY_TEST_RABBITMQ chooses the version
// ([broker.Version]); see broker's documentation.
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
package rabbitmq
