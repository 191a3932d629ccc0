package broker

import (
	"slices"
	"strings"
	"testing"
)

// TestScanDeprecations reads a log as RabbitMQ 4.0.5 writes it: each
// deprecation is one warning of several lines, reported once; other
// warnings that speak of deprecation count too; info lines and later lines
// of a message do not.
func TestScanDeprecations(t *testing.T) {
	const log = "" +
		"2026-12-07 11:54:48.938311+00:00 [info] <0.610.0> accepting AMQP connection 127.0.0.1:59670 -> 127.0.0.1:17824\n" +
		"2026-12-07 11:54:48.942278+00:00 [warning] <0.619.0> Deprecated features: `transient_nonexcl_queues`: Feature `transient_nonexcl_queues` is deprecated.\n" +
		"2026-12-07 11:54:48.942278+00:00 [warning] <0.619.0> By default, this feature can still be used for now.\n" +
		"2026-12-07 11:54:48.942278+00:00 [warning] <0.619.0>     \"deprecated_features.permit.transient_nonexcl_queues = true\"\n" +
		"2026-12-07 11:54:48.947161+00:00 [warning] <0.619.0> Deprecated features: `global_qos`: Feature `global_qos` is deprecated.\n" +
		"2026-12-07 11:54:48.947161+00:00 [warning] <0.619.0>     \"deprecated_features.permit.global_qos = false\"\n" +
		"2026-12-07 11:54:49.000000+00:00 [info] <0.700.0> the word deprecated in an info line\n" +
		"2026-12-07 11:54:50.000000+00:00 [warning] <0.619.0> Deprecated features: `global_qos`: Feature `global_qos` is deprecated.\n" +
		"2026-12-07 11:54:51.000000+00:00 [warning] <0.800.0> Setting X is deprecated, use Y\n" +
		"2026-12-07 11:54:52.000000+00:00 [warning] <0.800.0> memory alarm set\n"
	got, err := scanDeprecations(strings.NewReader(log), nil)
	if err != nil {
		t.Fatal(err)
	}
	var features []string
	for _, d := range got {
		features = append(features, d.Feature)
	}
	want := []string{"transient_nonexcl_queues", "global_qos", "Setting X is deprecated, use Y"}
	if !slices.Equal(features, want) {
		t.Errorf("scanDeprecations: features %q; want %q", features, want)
	}
	if len(got) > 0 && !strings.HasPrefix(got[0].Line, "2026-12-07 11:54:48.942278+00:00 [warning]") {
		t.Errorf("first deprecation's line = %q; want the log line", got[0].Line)
	}
}
