package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/figway/figway/config"
)

// Hostile or mistaken routes files are refused fast, with bounded memory
// and a clear message (once: a 12 MB file took 771 MB, 100k documents
// over 15 s, /dev/zero all the memory there was).
func TestHostileRoutesFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var docs strings.Builder
	for docs.Len() < config.MaxFileBytes-100 {
		docs.WriteString("a: 1\n---\n")
	}
	// 100k routes each merging ten anchored mappings, each with a field no
	// route has (once: 1.8 GB and 1,185,583 problem lines). Within the
	// size bound, aliases are bounded on their own: see TestParseRules'
	// "alias bomb".
	var aliases strings.Builder
	aliases.WriteString("descriptors: [api.binpb]\nbroker: {url: amqp://h}\n")
	for i := range 10 {
		fmt.Fprintf(&aliases, "x%d: &a%d {timeout: 1s, bogus%d: 1}\n", i, i, i)
	}
	aliases.WriteString("routes:\n")
	for range 100000 {
		aliases.WriteString("- {<<: [*a0, *a1, *a2, *a3, *a4, *a5, *a6, *a7, *a8, *a9]}\n")
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"12 MB file", write("big.yaml", "routes: ["+strings.Repeat("{method: a.B/C, routing_key: k}, ", 12<<20/33)+"]\n"), "at most 1048576"},
		{"/dev/zero", "/dev/zero", "not a regular file"},
		{"a directory", dir, "not a regular file"},
		{"100k YAML documents", write("docs.yaml", docs.String()), "one YAML document"},
		{"100k routes merging 10 aliases each", write("aliases.yaml", aliases.String()), "at most 1048576"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := config.Load(tc.path)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %.300v; want an error saying %q", err, tc.want)
			}
			if lines := strings.Count(err.Error(), "\n") + 1; lines > 101 {
				t.Errorf("Load reported %d problem lines; want at most 100 and a count of the rest", lines)
			}
			// Generous bounds for -race on a loaded two-core machine; the
			// unbounded loads took seconds to minutes and gigabytes.
			if took > 5*time.Second {
				t.Errorf("Load took %v; want well under a second on an idle machine", took)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<30 {
				t.Errorf("Load allocated %d MiB; want it bounded", alloc>>20)
			}
			t.Logf("refused in %v, %d MiB allocated: %.120s", took.Round(time.Millisecond), (after.TotalAlloc-before.TotalAlloc)>>20, err)
		})
	}
}

// A file with thousands of problems reports the first 100, in the order of
// the file, and how many more there are.
func TestProblemsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("descriptors: [api.binpb]\nbroker: {url: amqp://h}\nroutes:\n")
	for range 5000 {
		b.WriteString("- {methd: x}\n")
	}
	_, err := config.Parse([]byte(b.String()), t.TempDir())
	if err == nil {
		t.Fatal("Parse = nil; want problems")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 101 || !strings.HasPrefix(lines[100], "and ") || !strings.HasSuffix(lines[100], " more problems") {
		t.Errorf("Parse reported %d lines, the last %q; want 100 problems and \"and N more problems\"", len(lines), lines[len(lines)-1])
	}
}
