package config

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/figway/figway/config/yamlfile"
)

// MaxFileBytes bounds a routes file: a larger one (or one that is no
// regular file, such as /dev/zero or a pipe) is refused before it is
// parsed, so that a hostile or mistaken file cannot take the memory of a
// running figway on reload. A routes file of a thousand routes is about
// 100 KiB.
const MaxFileBytes = 1 << 20

// Load reads the routes file at path and the descriptor sets it names
// (paths relative to the file), applies defaults and validates. The error,
// if any, joins one *FieldError per problem; the Config is then nil.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, &FieldError{Err: err}
	}
	return Parse(data, filepath.Dir(path))
}

// readFile reads a regular file of at most MaxFileBytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file; want a YAML routes file", path)
	}
	if fi.Size() > MaxFileBytes {
		return nil, fmt.Errorf("%s is %d bytes; a routes file may have at most %d (1 MiB)", path, fi.Size(), MaxFileBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s grew past %d bytes (1 MiB) while read", path, MaxFileBytes)
	}
	return data, nil
}

// secondDocument returns the line of a second YAML document marker ("---"
// at the start of a line, after the first content), or 0. The YAML parser
// takes quadratic time over many documents; a routes file has one.
func secondDocument(data []byte) int {
	seen := false
	line := 1
	for rest := data; len(rest) > 0; line++ {
		l, after, _ := bytes.Cut(rest, []byte("\n"))
		rest = after
		if bytes.HasPrefix(l, []byte("---")) && (len(l) == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r') {
			if seen {
				return line
			}
			seen = true
		}
		if len(bytes.TrimSpace(l)) > 0 && l[0] != '#' && l[0] != '%' {
			seen = true
		}
	}
	return 0
}

// Parse is Load on bytes already read; dir resolves relative descriptor
// paths ("" is the working directory).
//
// Every problem is reported, not the first one only: unknown keys, values
// of the wrong type, impossible combinations and methods missing from the
// descriptors, each as a *FieldError with its YAML path and line. Only a
// YAML syntax error stops the load at once.
func Parse(data []byte, dir string) (*Config, error) {
	p := yamlfile.NewProblems()
	if len(data) > MaxFileBytes {
		p.Add("", 0, fmt.Errorf("%d bytes; a routes file may have at most %d (1 MiB)", len(data), MaxFileBytes))
		return nil, joinProblems(p)
	}
	if line := secondDocument(data); line > 0 {
		p.Add("", line, fmt.Errorf("a routes file holds one YAML document; found a second one"))
		return nil, joinProblems(p)
	}
	root, ok := yamlfile.Parse(data, p)
	if !ok {
		return nil, joinProblems(p)
	}
	d := &decoder{Decoder: &yamlfile.Decoder{P: p}, broken: map[string]bool{}}
	c := d.config(root)
	c.Descriptors, c.Files = loadDescriptors(d.descriptors, dir, p)
	checkTLS(c, dir, p)
	validateResilience(c, p, d.broken)
	edgeFiles(c, dir, p)
	c.applyDefaults()
	validateRoutes(c, p, d.broken)
	validateEdge(c, p)
	validateAsync(c, dir, p)
	validateAdminToken(c, dir, p)
	validateTopology(&c.Topology, p, d.broken)
	if err := joinProblems(p); err != nil {
		return nil, err
	}
	return c, nil
}
