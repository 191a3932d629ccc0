package cluster_test

import (
	"os"
	"testing"

	"github.com/figway/figway/internal/testing/rabbitmq"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashingWorkerEnv) != "" {
		os.Exit(runCrashingWorker())
	}
	rabbitmq.Main(m)
}
