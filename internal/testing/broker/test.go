package broker

import (
	"errors"
	"os"
	"strconv"

	amqp "github.com/rabbitmq/amqp091-go"
)

// T is the part of testing.TB that the methods of a node taking a test
// use ([Node.NewVHost], [Cluster.NewVHost], [Unavailable]): this package
// does not import testing, so that a program (make bench) can start nodes.
type T interface {
	Helper()
	Name() string
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Unavailable ends the test because it cannot have the broker it needs: a
// failure when CI=true, else a skip. An unknown FIGWAY_TEST_RABBITMQ is a
// mistake, not a missing broker: it always fails.
func Unavailable(t T, err error) {
	t.Helper()
	if errors.Is(err, errBadVersion) {
		t.Fatalf("rabbitmqtest: %v", err)
	}
	msg := unavailableError(err)
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("%s\n(CI=true: a missing broker fails the test instead of skipping it)", msg)
	}
	t.Skipf("%s\n(the test is skipped; with CI=true it would fail)", msg)
}

// External returns a node that wraps a broker at rawURL: one of the
// tests' own (FIGWAY_TEST_AMQP_URL), which the methods that control a node
// refuse with [ErrExternal].
func External(rawURL string) (*Node, error) {
	u, err := amqp.ParseURI(rawURL)
	if err != nil {
		return nil, err
	}
	return &Node{url: rawURL, port: u.Port, external: true}, nil
}
