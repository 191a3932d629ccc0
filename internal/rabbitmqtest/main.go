package rabbitmqtest

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Main is TestMain for packages whose tests use a broker: it runs the tests,
// stops the shared node, then checks that no goroutine outlived them
// (goleak), and exits. goleak.VerifyTestMain cannot be used as is: it exits
// before Shutdown could run.
func Main(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	Shutdown()
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
