package config

import (
	"os"
	"path/filepath"
)

// Load reads the routes file at path and the descriptor sets it names
// (paths relative to the file), applies defaults and validates. The error,
// if any, joins one *FieldError per problem; the Config is then nil.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &FieldError{Err: err}
	}
	return Parse(data, filepath.Dir(path))
}

// Parse is Load on bytes already read; dir resolves relative descriptor
// paths ("" is the working directory).
//
// Every problem is reported, not the first one only: unknown keys, values
// of the wrong type, impossible combinations and methods missing from the
// descriptors, each as a *FieldError with its YAML path and line. Only a
// YAML syntax error stops the load at once.
func Parse(data []byte, dir string) (*Config, error) {
	p := newProblems()
	root, ok := parseYAML(data, p)
	if !ok {
		return nil, p.err()
	}
	d := &decoder{p: p, broken: map[string]bool{}}
	c := d.config(root)
	c.Descriptors, c.Files = loadDescriptors(d.descriptors, dir, p)
	checkTLS(c, dir, p)
	validateResilience(c, p, d.broken)
	c.applyDefaults()
	validateRoutes(c, p, d.broken)
	validateAsync(c, dir, p)
	validateTopology(&c.Topology, p, d.broken)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}
