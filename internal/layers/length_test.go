package layers_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// maxLines is how long a function of a call's path may be, from its func
// line to its closing brace: it reads top to bottom in a screen, its cold
// paths (errors, logging, retries) in functions of their own.
const maxLines = 60

// callPath are the packages a call passes through, from an ingress to the
// broker and the worker and back, and the wiring: every function in them
// is held to maxLines.
var callPath = []string{
	"adapters/grpcin", "adapters/httpin", "adapters/amqp", "adapters/legacy",
	"gateway", "wire", "wire/amqpwire", "resilience", "auth", "ratelimit", "operations",
	"internal/app", "internal/grpcframe", "internal/batchconn", "worker",
}

// TestFunctionLength checks that no function of callPath's packages (test
// files aside) is longer than maxLines.
func TestFunctionLength(t *testing.T) {
	for _, pkg := range callPath {
		dir := filepath.Join("..", "..", filepath.FromSlash(pkg))
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		files := 0
		for _, e := range entries {
			name := e.Name()
			if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			files++
			for _, long := range longFunctions(t, filepath.Join(dir, name)) {
				t.Errorf("%s/%s: %s", pkg, name, long)
			}
		}
		if files == 0 {
			t.Errorf("%s has no Go files: is the list out of date?", pkg)
		}
	}
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
