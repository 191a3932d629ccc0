package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(echoEnv); addr != "" {
		exitServingEcho(addr) // this test binary, started as grpc-echo
	}
	if spec := os.Getenv(watermillEnv); spec != "" {
		exitServingWatermill(spec) // this test binary, started as the Watermill bridge
	}
	if spec := os.Getenv(bareEnv); spec != "" {
		exitServingBare(spec) // this test binary, started as the bare bridge
	}
	if spec := os.Getenv(serviceEnv); spec != "" {
		exitServingService(spec) // this test binary, started as the service process
	}
	os.Exit(m.Run())
}

// TestBench runs make bench's program end to end, briefly: every scenario
// must answer every call (every stream complete: 200 messages), and the
// report must end with the ratios line.
func TestBench(t *testing.T) {
	t.Chdir("..") // it builds ./cmd/figway and reads examples/ from the module root
	var out bytes.Buffer
	if err := run(&out, 300*time.Millisecond, 256, 300, 500*time.Millisecond, 4, 200, "", ""); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	report := out.String()
	t.Log("\n" + report)
	row := regexp.MustCompile(`(?m)^\s*(\S+)\s+(1|64)\s+(\d+)\s+(\d+)\s`)
	seen := map[string]int{}
	for _, m := range row.FindAllStringSubmatch(report, -1) {
		seen[m[1]]++
		if m[3] == "0" || m[4] != "0" {
			t.Errorf("%s c=%s: %s calls, %s errors; want some calls and no errors", m[1], m[2], m[3], m[4])
		}
	}
	for _, s := range []string{"grpc-echo", "grpc-echo-inproc", "amqp-raw", "amqp-wire", "amqp-raw-ack", "amqp-tutorial",
		"figway-grpc", "figway-rest", "figway-rawecho", "figway-rawecho-ack", "figway-event", "bare-bridge", "watermill-bridge",
		"grpc-echo-stream", "figway-stream", "figway-stream-rest", "figway-stream-legacy"} {
		if seen[s] != 2 {
			t.Errorf("scenario %s: %d rows; want 2 (c=1 and c=64)", s, seen[s])
		}
	}
	if !regexp.MustCompile(`(?m)^streams \(c=64\): figway-stream \d+ msgs/s = \d+\.\d\d of grpc-echo-stream's \d+`).MatchString(report) {
		t.Errorf("streams line missing")
	}
	if !strings.Contains(report, "holding: 300 concurrent calls held 500ms: 300 ok, 0 failed") {
		t.Errorf("holding line missing or with failures")
	}
	lines := strings.Split(strings.TrimSpace(report), "\n")
	last := lines[len(lines)-1]
	if !regexp.MustCompile(`^efficiency=\d+\.\d\d vs-tutorial=\d+\.\d\d rest/grpc=\d+\.\d\d vs-watermill=\d+\.\d\d cpu-figway-us=\d+ sdk/raw-ack=\d+\.\d\d gateway/bare-cpu=\d+\.\d\d$`).MatchString(last) {
		t.Errorf("last line %q; want efficiency=<n> vs-tutorial=<n> rest/grpc=<n> vs-watermill=<n> cpu-figway-us=<n> sdk/raw-ack=<n> gateway/bare-cpu=<n>", last)
	}
}
