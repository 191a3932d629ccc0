package layers_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// outside are files that comments and docs once cited but that are not in
// the repository; the names are built here so that this file does not
// cite them.
var outside = []string{"DESIGN" + ".md", "RABBITMQ" + ".md", "STYLE" + ".md"}

// TestNoReferencesOutsideTheRepo: code comments and docs cite pages of
// docs/, never files a reader of the repository cannot open.
func TestNoReferencesOutsideTheRepo(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "gen") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(name) {
		case ".go", ".md", ".yaml", ".yml", ".sh", ".proto", ".py", ".js", ".ts":
		default:
			if name != "Makefile" {
				return nil
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, f := range outside {
			if strings.Contains(string(b), f) {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s cites %s, which is not in the repository: cite a page of docs/", rel, f)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
