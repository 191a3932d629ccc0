package rabbitmq

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/figway/figway/internal/testing/broker"
)

// afterTests are the functions AfterTests registered.
var afterTests struct {
	sync.Mutex
	funcs []func()
}

// AfterTests registers f to run when [Main] has run the tests and stopped
// the brokers: the cleanup of a fixture shared by the tests of the binary.
func AfterTests(f func()) {
	afterTests.Lock()
	defer afterTests.Unlock()
	afterTests.funcs = append(afterTests.funcs, f)
}

// Main is TestMain for packages whose tests use a broker: it runs the tests,
// stops the shared node, checks that no goroutine outlived them (goleak) and
// that no node logged the use of a deprecated feature, and exits.
// goleak.VerifyTestMain cannot be used as is: it exits before Shutdown
// could run.
func Main(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	Shutdown()
	afterTests.Lock()
	for _, f := range afterTests.funcs {
		f()
	}
	afterTests.Unlock()
	if report := broker.DeprecationReport(); report != "" {
		fmt.Fprintln(os.Stderr, report)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
