package rabbitmq_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/figway/figway/internal/testing/broker"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// TestVersion checks that the nodes run the RabbitMQ FIGWAY_TEST_RABBITMQ
// chose. Unset, it is the machine's own package, whose version this test
// only logs.
func TestVersion(t *testing.T) {
	n := rabbitmq.ForTest(t)
	v := n.ServerVersion()
	t.Logf("FIGWAY_TEST_RABBITMQ=%q: Version() = %s, the node announces RabbitMQ %s", os.Getenv("FIGWAY_TEST_RABBITMQ"), broker.Version(), v)
	if broker.Version() == broker.V4_0 && !strings.HasPrefix(v, "4.0.") {
		t.Errorf("Version() = %s, but the node announces RabbitMQ %q", broker.Version(), v)
	}
	if v == "" {
		t.Error("ServerVersion() = \"\"; want the version the broker announced")
	}
}

// TestUnknownVersion checks that a FIGWAY_TEST_RABBITMQ this package does not
// know fails the test, CI or not: a typo must not skip every broker test.
func TestUnknownVersion(t *testing.T) {
	t.Setenv("FIGWAY_TEST_RABBITMQ", "4")
	t.Setenv("CI", "")
	r := ownRecorded(t)
	if !r.failed || !strings.Contains(r.msg, `FIGWAY_TEST_RABBITMQ="4"`) {
		t.Errorf("Own with FIGWAY_TEST_RABBITMQ=4: failed = %v, message %q; want a failure naming the value", r.failed, r.msg)
	}
}

// TestMissingRoot40 checks the message when RabbitMQ 4.0's root is not
// there: it says how to prepare it.
func TestMissingRoot40(t *testing.T) {
	t.Setenv("FIGWAY_TEST_RABBITMQ", "4.0")
	t.Setenv("FIGWAY_RABBITMQ_CACHE", t.TempDir())
	for _, ci := range []string{"", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			r := ownRecorded(t)
			if r.skipped != (ci == "") || r.failed != (ci == "true") {
				t.Errorf("Own: skipped, failed = %v, %v; want a skip, or a failure with CI=true", r.skipped, r.failed)
			}
			for _, want := range []string{"RabbitMQ 4.0 is not installed in", "scripts/rabbitmq.sh ensure 4.0"} {
				if !strings.Contains(r.msg, want) {
					t.Errorf("message %q does not contain %q", r.msg, want)
				}
			}
		})
	}
}

// deprecationChild makes TestDeprecatedFeatureFailsTheRun, run again by
// itself in a test binary of its own, use a deprecated feature without
// allowing it.
const deprecationChild = "FIGWAY_TEST_DEPRECATION_CHILD"

// TestDeprecatedFeatureFailsTheRun proves the check for deprecated features:
// a transient non-exclusive queue and global QoS, used on a RabbitMQ 4.0
// node, are found in its log; and a test binary whose test used one (and
// passed) fails, naming the feature.
func TestDeprecatedFeatureFailsTheRun(t *testing.T) {
	if os.Getenv(deprecationChild) != "" {
		useDeprecatedFeatures(t, rabbitmq.Own(t).URL())
		return
	}
	if broker.Version() != broker.V4_0 {
		t.Skipf("RabbitMQ %s logs no deprecations: 4.0 is the first this project tests that does", broker.Version())
	}
	n := rabbitmq.Own(t)
	n.AllowDeprecatedFeatures()
	useDeprecatedFeatures(t, n.URL())
	want := []string{"transient_nonexcl_queues", "global_qos"}
	var got []string
	// The node writes its log a moment after it answers.
	for deadline := time.Now().Add(20 * time.Second); ; {
		found, err := n.DeprecatedFeatures()
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, d := range found {
			got = append(got, d.Feature)
		}
		if slices.Equal(got, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !slices.Equal(got, want) {
		t.Errorf("DeprecatedFeatures() = %q; want %q", got, want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDeprecatedFeatureFailsTheRun$", "-test.count=1")
	cmd.Env = append(os.Environ(), deprecationChild+"=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("test binary that used a deprecated feature: %v; want exit status 1\n%s", err, out)
	}
	for _, want := range []string{"PASS", "the broker logged the use of deprecated features", "transient_nonexcl_queues", "global_qos"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output of the test binary that used a deprecated feature does not contain %q:\n%s", want, out)
		}
	}
}

// useDeprecatedFeatures declares a transient non-exclusive queue and sets
// a global prefetch on the broker at url.
func useDeprecatedFeatures(t *testing.T, url string) {
	t.Helper()
	ch := rabbitmq.Channel(t, url)
	const durable, autoDelete, exclusive, noWait = false, false, false, false
	if _, err := ch.QueueDeclare("transient", durable, autoDelete, exclusive, noWait, nil); err != nil {
		t.Fatal(err)
	}
	const prefetchCount, prefetchSize, global = 10, 0, true
	if err := ch.Qos(prefetchCount, prefetchSize, global); err != nil {
		t.Fatal(err)
	}
}
