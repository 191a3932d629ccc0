package layers_test

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The worker SDK is a module of its own (docs/development.md, "Modules"),
// so that a service that imports it gets its dependencies and not
// figway's. These are all it may have.
var (
	// workerLinks are the modules whose packages a program importing the
	// worker compiles: the SDK's own dependencies.
	workerLinks = []string{
		"github.com/figway/figway/internal/batchconn",
		"github.com/figway/figway/wire",
		"github.com/figway/figway/worker",
		"github.com/rabbitmq/amqp091-go",
		"google.golang.org/grpc", // status, codes and metadata
		"google.golang.org/genproto/googleapis/rpc",
		"google.golang.org/protobuf",
		// The trace API, for Config.TracerProvider's CONSUMER spans: no
		// SDK, no exporter (docs/development.md, "Modules").
		"go.opentelemetry.io/otel",
		"go.opentelemetry.io/otel/trace",
		"github.com/cespare/xxhash/v2", // by grpc
		"golang.org/x/sys",             // by grpc
	}
	// workerGraph are the other modules of the worker module's graph
	// (go list -m all): named by the go.mod files of its dependencies and
	// of its and batchconn's tests, never compiled into a worker.
	workerGraph = []string{
		// the tests'
		"github.com/google/go-cmp", "go.uber.org/goleak",
		// grpc's go.mod (xDS, its OpenTelemetry plugin, ALTS, …)
		"cel.dev/expr", "cloud.google.com/go/compute/metadata",
		"github.com/GoogleCloudPlatform/opentelemetry-operations-go/detectors/gcp",
		"github.com/cncf/xds/go", "github.com/envoyproxy/go-control-plane",
		"github.com/envoyproxy/go-control-plane/envoy", "github.com/envoyproxy/go-control-plane/ratelimit",
		"github.com/envoyproxy/protoc-gen-validate", "github.com/go-jose/go-jose/v4", "github.com/golang/glog",
		"github.com/golang/protobuf", "github.com/google/uuid", "github.com/planetscale/vtprotobuf",
		"github.com/spiffe/go-spiffe/v2", "go.opentelemetry.io/contrib/detectors/gcp",
		"go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/sdk/metric",
		"golang.org/x/net", "golang.org/x/oauth2", "golang.org/x/sync", "golang.org/x/text",
		"gonum.org/v1/gonum", "google.golang.org/genproto/googleapis/api",
		// OpenTelemetry's go.mod files
		"github.com/go-logr/logr", "github.com/go-logr/stdr", "go.opentelemetry.io/auto/sdk",
		"go.opentelemetry.io/otel/log", "go.opentelemetry.io/otel/metric",
		"github.com/stretchr/testify", "go.yaml.in/yaml/v3", "golang.org/x/mod", "golang.org/x/tools",
	}
)

// TestWorkerModuleDependencies checks, with go list in the worker module
// alone (GOWORK=off), that a worker compiles workerLinks and nothing else,
// and that the module's graph holds nothing beyond workerLinks and
// workerGraph. A new dependency fails it: add it here, with the reason,
// only if a user of the SDK should carry it.
func TestWorkerModuleDependencies(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "worker")
	linked := goList(t, dir, "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", ".")
	checkModules(t, "modules a worker compiles", linked, workerLinks)
	graph := goList(t, dir, "-m", "-f", "{{.Path}}", "all")
	checkModules(t, "the worker module's graph (go list -m all)", graph, append(slices.Clone(workerLinks), workerGraph...))
}

// TestWorkerModuleOutsideTheRepository builds a program in a module of its
// own, outside the repository, that requires the worker as a user's
// module does, through local replaces of the repository's modules (before
// a release tags them: docs/development.md, "Modules"), and checks that
// its graph is the worker's.
func TestWorkerModuleOutsideTheRepository(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	goMod, err := os.ReadFile(filepath.Join(root, "worker", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	// The worker's own requirements, at its versions, and the figway
	// modules from this checkout.
	req := string(goMod)[strings.Index(string(goMod), "require"):strings.Index(string(goMod), "// The figway modules")]
	mod := "module example.com/greeter\n\ngo 1.26.8\n\nrequire github.com/figway/figway/worker v0.0.0-00010101000000-000000000000\n\n" + req +
		"replace (\n" +
		"\tgithub.com/figway/figway/worker => " + filepath.Join(root, "worker") + "\n" +
		"\tgithub.com/figway/figway/wire => " + filepath.Join(root, "wire") + "\n" +
		"\tgithub.com/figway/figway/internal/batchconn => " + filepath.Join(root, "internal", "batchconn") + "\n)\n"
	sum, err := os.ReadFile(filepath.Join(root, "worker", "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	const program = `package main

import (
	"context"
	"os"
	"os/signal"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/worker"
)

func main() {
	w := worker.New(worker.Config{URL: os.Getenv("AMQP_URL"), Queue: "greeter.requests"})
	worker.Handle(w, "greeter.v1.Greeter/Hello", func(_ context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String("hello, " + req.GetValue()), nil
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := w.Run(ctx); err != nil {
		panic(err)
	}
}
`
	for name, content := range map[string]string{"go.mod": mod, "go.sum": string(sum), "main.go": program} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "greeter"), ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of a module requiring the worker: %v\n%s\ngo.mod:\n%s", err, out, mod)
	}
	graph := goList(t, dir, "-m", "-f", "{{.Path}}", "all")
	checkModules(t, "the user module's graph", graph, append(slices.Clone(workerLinks), append(workerGraph, "example.com/greeter")...))
	if slices.Contains(graph, module) {
		t.Errorf("the user module's graph holds figway's main module %s", module)
	}
}

// repoRoot returns the repository's root: this package is internal/layers.
func repoRoot(t *testing.T) string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// goList runs go list with args in dir, with no workspace, and returns
// its lines, sorted and without repeats.
func goList(t *testing.T, dir string, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list %s in %s: %v\n%s", strings.Join(args, " "), dir, err, stderr)
	}
	lines := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		if line = strings.TrimSpace(line); line != "" {
			lines[line] = true
		}
	}
	return slices.Sorted(maps.Keys(lines))
}

// checkModules fails t for every module of got that allowed lacks.
func checkModules(t *testing.T, what string, got, allowed []string) {
	t.Helper()
	var extra []string
	for _, m := range got {
		if !slices.Contains(allowed, m) {
			extra = append(extra, m)
		}
	}
	if len(extra) > 0 {
		t.Errorf("%s: %d modules beyond the worker's intended dependencies (modules_test.go):\n%s", what, len(extra), strings.Join(extra, "\n"))
	}
	t.Logf("%s: %d modules", what, len(got))
}
