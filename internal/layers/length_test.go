package layers_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// maxLines is how long a function of figway may be, from its func line
// to its closing brace: it reads top to bottom in a screen, its cold
// paths (errors, logging, retries) in functions of their own.
const maxLines = 60

// callPath are the packages a call passes through, from an ingress to the
// broker and the worker and back, and the wiring: TestFunctionLength must
// find them among the packages it checks.
var callPath = []string{
	"adapters/grpcin", "adapters/httpin", "adapters/amqp", "adapters/legacy",
	"gateway", "wire", "wire/amqpwire", "resilience", "auth", "ratelimit", "operations",
	"internal/app", "internal/grpcframe", "internal/batchconn", "worker",
}

// TestFunctionLength checks that no function of figway's production
// packages (those the import diagram draws), its examples or its
// benchmark (test files and the tests' machinery aside) is longer than
// maxLines.
func TestFunctionLength(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{.Dir}} {{join .GoFiles " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := map[string]int{} // package → its files
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		pkg, ok := strings.CutPrefix(f[0], module+"/")
		if !ok || !(production(pkg) || pkg == "bench" || strings.HasPrefix(pkg, "examples/")) || len(f) < 2 {
			continue
		}
		for _, name := range f[2:] {
			checked[pkg]++
			for _, long := range longFunctions(t, filepath.Join(f[1], name)) {
				t.Errorf("%s/%s: %s", pkg, name, long)
			}
		}
	}
	for _, pkg := range callPath {
		if checked[pkg] == 0 {
			t.Errorf("%s, on a call's path, has no Go file that go list names: is the list out of date?", pkg)
		}
	}
	t.Logf("%d packages checked", len(checked))
}

// longFunctions returns the functions of file longer than maxLines, each
// as "name (n lines, line l)".
func longFunctions(t *testing.T, file string) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var long []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		from, to := fset.Position(fn.Pos()).Line, fset.Position(fn.Body.Rbrace).Line
		if n := to - from + 1; n > maxLines {
			long = append(long, fmt.Sprintf("%s is %d lines (line %d); at most %d", funcName(fn), n, from, maxLines))
		}
	}
	return long
}

// funcName is fn's name, with its receiver's type for a method.
func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	typ := fn.Recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	if ix, ok := typ.(*ast.IndexExpr); ok {
		typ = ix.X
	}
	if id, ok := typ.(*ast.Ident); ok {
		return id.Name + "." + fn.Name.Name
	}
	return fn.Name.Name
}
