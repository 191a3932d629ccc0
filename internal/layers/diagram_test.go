package layers_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// external are the modules the diagram draws, by the name it gives them.
var external = map[string]string{
	"github.com/rabbitmq/amqp091-go": "amqp091-go",
	"github.com/goccy/go-yaml":       "goccy/go-yaml",
	"github.com/golang-jwt/jwt":      "golang-jwt/jwt",
	"github.com/MicahParks/keyfunc":  "keyfunc",
	"golang.org/x/time/rate":         "x/time/rate",
}

// TestDiagramMatchesImports checks the import diagram of
// docs/architecture.md ("Package map") against go list: each line names a
// package and every figway package and drawn module it imports directly,
// and every figway package that imports one of them has its line.
func TestDiagramMatchesImports(t *testing.T) {
	drawn := diagram(t)
	actual := directImports(t)
	for pkg, want := range drawn {
		got, ok := actual[pkg]
		if !ok {
			t.Errorf("docs/architecture.md draws %s, which is not a package of figway", pkg)
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("docs/architecture.md draws %s ──► %s; go list says it imports %s", pkg, strings.Join(want, ", "), strings.Join(got, ", "))
		}
	}
	for pkg, got := range actual {
		if _, ok := drawn[pkg]; !ok && len(got) > 0 {
			t.Errorf("%s imports %s, and docs/architecture.md has no line for it", pkg, strings.Join(got, ", "))
		}
	}
}

// diagram reads the first code block after "## Package map": lines
// "pkg ──► a, b (a note), c", into pkg → sorted names.
func diagram(t *testing.T) map[string][]string {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "## Package map")
	if !ok {
		t.Fatal(`docs/architecture.md has no "## Package map"`)
	}
	_, block, _ := strings.Cut(after, "```\n")
	block, _, _ = strings.Cut(block, "```")
	drawn := map[string][]string{}
	for line := range strings.Lines(block) {
		pkg, rest, ok := strings.Cut(line, "──►")
		if !ok {
			continue
		}
		var names []string
		for _, n := range strings.Split(rest, ",") {
			n, _, _ = strings.Cut(n, "(") // a note in parentheses
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		drawn[strings.TrimSpace(pkg)] = names
	}
	if len(drawn) == 0 {
		t.Fatal("no diagram in docs/architecture.md's package map")
	}
	return drawn
}

// directImports returns, for each production package of figway, the
// figway packages and drawn modules it imports, by the diagram's names.
func directImports(t *testing.T) map[string][]string {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	actual := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		pkg, ok := strings.CutPrefix(f[0], module+"/")
		if !ok || !production(pkg) {
			continue
		}
		var names []string
		for _, imp := range f[1:] {
			if n := drawnName(imp); n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		actual[pkg] = names
	}
	return actual
}

// production reports whether pkg is part of figway as users run it, and
// so drawn: not generated code, examples, tests or their machinery, the
// benchmark or the deployment files.
func production(pkg string) bool {
	for _, p := range []string{"gen/", "examples/", "test/", "internal/testing/", "internal/layers", "bench", "deploy"} {
		if strings.HasPrefix(pkg, p) {
			return false
		}
	}
	return true
}

// drawnName is the diagram's name of an imported package: a figway
// package relative to the module, a drawn module's name, or "" for what
// the diagram leaves out (the standard library, other modules, gen/).
func drawnName(imp string) string {
	if p, ok := strings.CutPrefix(imp, module+"/"); ok {
		if strings.HasPrefix(p, "gen/") {
			return ""
		}
		return p
	}
	for mod, name := range external {
		if imp == mod || strings.HasPrefix(imp, mod+"/") {
			return name
		}
	}
	return ""
}
