package proc

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Curl runs curl with args, within 20 s, and returns what it wrote to
// standard output; it fails the test if curl fails. Without curl it fails
// the test where CI promises everything is installed (CI=true), and skips
// it elsewhere.
func Curl(t testing.TB, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl not found")
		}
		t.Skip("curl not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s%s", args, err, out, stderr.String())
	}
	return string(out)
}
