package layers_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/figway/figway"

// rules are the arrows that must not exist: a package (or every package
// under a prefix ending in "/") and what it may not depend on, directly or
// not.
var rules = []struct {
	pkg       string
	forbidden []string
}{
	{"gateway", []string{"config", "adapters/", "metrics", "cmd/", "internal/app", "github.com/goccy/go-yaml", "github.com/rabbitmq/amqp091-go"}},
	{"wire", []string{"gateway", "config", "adapters/", "metrics", "resilience"}},
	{"resilience", []string{"gateway", "config", "adapters/", "metrics", "wire"}},
	// The edge checks: auth verifies tokens (its key sets are its own
	// I/O), ratelimit counts; neither knows routes or figway's wiring.
	{"auth", []string{"gateway", "config", "adapters/", "metrics", "wire", "resilience", "ratelimit", "cmd/", "internal/app", "internal/testing/"}},
	{"ratelimit", []string{"gateway", "config", "adapters/", "metrics", "wire", "resilience", "auth", "net/http", "internal/testing/"}},
	{"config", []string{"metrics", "cmd/", "internal/app", "adapters/grpcin", "adapters/httpin", "adapters/legacy", "adapters/statuspage"}},
	{"metrics", []string{"adapters/", "config", "cmd/", "internal/app"}},
	{"adapters/", []string{"config", "cmd/", "internal/app", "github.com/goccy/go-yaml"}},
	// The status page charts figway's own series; the other adapters name
	// routes for metrics through hooks.
	{"adapters/amqp", []string{"metrics"}},
	{"adapters/grpcin", []string{"metrics"}},
	{"adapters/httpin", []string{"metrics"}},
	{"adapters/legacy", []string{"metrics"}},
	{"operations", []string{"gateway", "config", "adapters/", "metrics", "cmd/", "internal/app"}},
	{"worker", []string{"gateway", "config", "adapters/", "metrics", "cmd/", "internal/app"}},
	// The tests' machinery (internal/testing) is for tests only.
	{"cmd/", []string{"internal/testing/"}},
	{"internal/app", []string{"internal/testing/"}},
	{"config", []string{"internal/testing/"}},
	{"gateway", []string{"internal/testing/"}},
	{"adapters/", []string{"internal/testing/"}},
	{"metrics", []string{"internal/testing/"}},
	{"operations", []string{"internal/testing/"}},
	{"worker", []string{"internal/testing/"}},
	// The tracer provider and its export queue know nothing of calls.
	{"tracing", []string{"gateway", "config", "adapters/", "metrics", "operations", "worker", "cmd/", "internal/app", "internal/testing/"}},
}

func TestNoUpwardImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) > 0 {
			deps[f[0]] = f[1:]
		}
	}
	for _, r := range rules {
		pkgs := matching(deps, r.pkg)
		if len(pkgs) == 0 {
			t.Errorf("%s: no such package", r.pkg)
		}
		for _, p := range pkgs {
			for _, d := range deps[p] {
				for _, f := range r.forbidden {
					if matches(d, f) {
						t.Errorf("%s depends on %s (a package drawn above it; see docs/architecture.md)", p, d)
					}
				}
			}
		}
	}
}

// matching returns the packages that rule pattern p names.
func matching(deps map[string][]string, p string) []string {
	var pkgs []string
	for pkg := range deps {
		if matches(pkg, p) {
			pkgs = append(pkgs, pkg)
		}
	}
	slices.Sort(pkgs)
	return pkgs
}

// matches reports whether import path pkg is named by p: a figway package
// relative to the module ("gateway", "adapters/" for everything under
// adapters) or an external module's path.
func matches(pkg, p string) bool {
	if !strings.Contains(strings.SplitN(p, "/", 2)[0], ".") {
		p = module + "/" + p
	}
	if strings.HasSuffix(p, "/") {
		return strings.HasPrefix(pkg, p)
	}
	return pkg == p || strings.HasPrefix(pkg, p+"/")
}
