package orders_test

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/figway/figway/internal/testing/proc"
)

var update = flag.Bool("update", false, "rewrite the samples in docs/ from the commands' real output")

// The sample output in docs/configuration.md is the real output of figway
// routes for the demo's file, so the two cannot drift: a change to either
// fails here, and `go test ./examples/orders -run TestDocSamples -update`
// rewrites the page.
func TestDocSamples(t *testing.T) {
	bin := proc.BuildFigway(t)
	cmd := exec.Command(bin, "routes", "-config", "figway.yaml")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("figway routes: %v", err)
	}
	const page = "../../docs/configuration.md"
	const prompt = "$ figway routes -config examples/orders/figway.yaml\n"
	doc, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(doc, []byte(prompt))
	if start < 0 {
		t.Fatalf("%s has no sample starting %q", page, prompt)
	}
	start += len(prompt)
	end := bytes.Index(doc[start:], []byte("```"))
	if end < 0 {
		t.Fatalf("%s: the sample after %q has no closing fence", page, prompt)
	}
	got := string(doc[start : start+end])
	if got == string(out) {
		return
	}
	if *update {
		fixed := append(append(append([]byte{}, doc[:start]...), out...), doc[start+end:]...)
		if err := os.WriteFile(page, fixed, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the sample of figway routes differs from its output; run go test ./examples/orders -run TestDocSamples -update\ndoc:\n%s\nfigway routes:\n%s",
		page, got, strings.TrimRight(string(out), "\n"))
}
