package config

import (
	"errors"
	"fmt"
	"math"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// The routes file is read in two steps. parseYAML turns goccy/go-yaml's
// syntax tree into a tree of values that keep their line and have anchors,
// aliases, merge keys and tags resolved; the decoder (decode.go) then walks
// that tree field by field. Walking it ourselves, rather than unmarshalling
// into structs, is what lets a load report every unknown key and every
// value of the wrong type, each with its path and line, instead of the
// first one only.

type kind int

const (
	null kind = iota
	scalar
	mapping
	sequence
)

func (k kind) String() string {
	switch k {
	case scalar:
		return "a scalar"
	case mapping:
		return "a mapping"
	case sequence:
		return "a list"
	}
	return "null"
}

// value is a node of the routes file.
type value struct {
	kind kind
	line int

	// scalar: v is a string, int64, uint64 (above MaxInt64 only), float64
	// or bool; text is its source text, without quotes.
	v    any
	text string

	members []member // mapping, in the file's order
	items   []*value // sequence

	size int // nodes in this subtree, to bound alias expansion
}

type member struct {
	key  string
	line int
	val  *value
}

// maxAliasNodes bounds how many nodes aliases may repeat in one file, so
// that a "billion laughs" file is refused instead of eating the machine.
const maxAliasNodes = 1 << 16

type converter struct {
	anchors map[string]*value
	aliased int
	p       *problems
}

// parseYAML parses one YAML document. It returns nil for an empty
// document, and ok false when the text is not YAML it can read at all (a
// syntax error, nesting too deep, two documents): the only problems after
// which a load does not go on to look for others.
func parseYAML(data []byte, p *problems) (root *value, ok bool) {
	if line, err := checkNesting(data); err != nil {
		p.add("", line, err)
		return nil, false
	}
	file, err := parseBytes(data)
	if err != nil {
		var yerr yaml.Error
		if errors.As(err, &yerr) {
			line := 0
			if tk := yerr.GetToken(); tk != nil && tk.Position != nil {
				line = tk.Position.Line
			}
			p.add("", line, fmt.Errorf("YAML syntax: %s", yerr.GetMessage()))
		} else {
			p.add("", 0, fmt.Errorf("YAML syntax: %w", err))
		}
		return nil, false
	}
	var docs []*ast.DocumentNode
	for _, d := range file.Docs {
		if d == nil {
			continue
		}
		switch d.Body.(type) {
		case nil, *ast.DirectiveNode, *ast.CommentGroupNode, *ast.CommentNode:
			// "%YAML 1.2" comes as a document of its own; and a document
			// of comments only is empty.
		default:
			docs = append(docs, d)
		}
	}
	switch len(docs) {
	case 0:
		return nil, true
	case 1:
	default:
		p.add("", lineOf(docs[1]), errors.New("a routes file holds one YAML document; found a second one"))
		return nil, false
	}
	c := &converter{anchors: map[string]*value{}, p: p}
	return c.convert(docs[0].Body, ""), true
}

// parseBytes parses YAML; a panic of the parser, which no input should
// cause, is reported as an error rather than taking figway down on a
// SIGHUP reload.
func parseBytes(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("YAML parser failed: %v", r)
		}
	}()
	// Duplicate keys are reported by convert, with all other problems.
	return parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
}

func lineOf(n ast.Node) int {
	if n == nil {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

// convert turns n, found at path, into a value. It never returns nil.
func (c *converter) convert(n ast.Node, path string) *value {
	line := lineOf(n)
	switch n := n.(type) {
	case nil, *ast.NullNode:
		return &value{kind: null, line: line, size: 1}
	case *ast.DocumentNode:
		return c.convert(n.Body, path)
	case *ast.CommentNode, *ast.CommentGroupNode:
		return &value{kind: null, line: line, size: 1}
	case *ast.AnchorNode:
		v := c.convert(n.Value, path)
		if n.Name != nil && n.Name.GetToken() != nil {
			c.anchors[n.Name.GetToken().Value] = v
		}
		return v
	case *ast.AliasNode:
		name := ""
		if n.Value != nil && n.Value.GetToken() != nil {
			name = n.Value.GetToken().Value
		}
		v, ok := c.anchors[name]
		if !ok {
			c.p.add(path, line, fmt.Errorf("alias *%s names no anchor defined before it", name))
			return &value{kind: null, line: line, size: 1}
		}
		c.aliased += v.size
		if c.aliased > maxAliasNodes {
			if c.aliased-v.size <= maxAliasNodes { // report once
				c.p.add(path, line, fmt.Errorf("aliases expand to more than %d values", maxAliasNodes))
			}
			return &value{kind: null, line: line, size: 1}
		}
		return v
	case *ast.TagNode:
		v := c.convert(n.Value, path)
		if n.Start != nil && n.Start.Value == "!!str" && v.kind == scalar {
			return &value{kind: scalar, line: v.line, v: v.text, text: v.text, size: 1}
		}
		return v
	case *ast.MappingNode:
		return c.mapping(n.Values, path, line)
	case *ast.MappingValueNode:
		return c.mapping([]*ast.MappingValueNode{n}, path, line)
	case *ast.SequenceNode:
		v := &value{kind: sequence, line: line, size: 1}
		for i, item := range n.Values {
			iv := c.convert(item, index(path, i))
			v.items = append(v.items, iv)
			v.size += iv.size
		}
		return v
	case *ast.LiteralNode:
		s := ""
		if n.Value != nil {
			s = n.Value.Value
		}
		return &value{kind: scalar, line: line, v: s, text: s, size: 1}
	case ast.ScalarNode:
		text := ""
		if tk := n.GetToken(); tk != nil {
			text = tk.Value
		}
		v := n.GetValue()
		switch x := v.(type) {
		case string:
			text = x
		case uint64:
			if x <= math.MaxInt64 {
				v = int64(x) // goccy gives positive integers as uint64
			}
		case int64, float64, bool:
		case nil:
			return &value{kind: null, line: line, size: 1}
		default:
			v = text
		}
		return &value{kind: scalar, line: line, v: v, text: text, size: 1}
	}
	c.p.add(path, line, fmt.Errorf("unsupported YAML node %s", n.Type()))
	return &value{kind: null, line: line, size: 1}
}

func (c *converter) mapping(pairs []*ast.MappingValueNode, path string, line int) *value {
	v := &value{kind: mapping, line: line, size: 1}
	seen := map[string]int{} // key → line of its first appearance
	var merged []*value
	for _, mv := range pairs {
		if mv == nil {
			continue
		}
		if mv.Key != nil && mv.Key.IsMergeKey() {
			merged = append(merged, c.convert(mv.Value, field(path, "<<")))
			continue
		}
		key, keyLine, ok := c.key(mv.Key, path)
		if !ok {
			continue
		}
		if first, dup := seen[key]; dup {
			c.p.add(field(path, key), keyLine, fmt.Errorf("duplicate key (first on line %d)", first))
			continue
		}
		seen[key] = keyLine
		val := c.convert(mv.Value, field(path, key))
		if val.line == 0 {
			val.line = keyLine
		}
		v.members = append(v.members, member{key: key, line: keyLine, val: val})
		v.size += val.size
	}
	// Merge keys (<<: *base) bring in the members of other mappings; keys
	// written out in this mapping win, then the first merged mapping that
	// has the key.
	for _, m := range merged {
		var sources []*value
		switch m.kind {
		case mapping:
			sources = []*value{m}
		case sequence:
			sources = m.items
		}
		if len(sources) == 0 && m.kind != null {
			c.p.add(field(path, "<<"), m.line, errors.New("a merge key takes a mapping or a list of mappings"))
		}
		for _, s := range sources {
			if s.kind != mapping {
				c.p.add(field(path, "<<"), s.line, errors.New("a merge key takes a mapping or a list of mappings"))
				continue
			}
			for _, sm := range s.members {
				if _, dup := seen[sm.key]; dup {
					continue
				}
				seen[sm.key] = sm.line
				v.members = append(v.members, sm)
				v.size += sm.val.size
			}
		}
	}
	return v
}

// key returns the text of a mapping key; keys must be scalars.
func (c *converter) key(k ast.MapKeyNode, path string) (string, int, bool) {
	var n ast.Node = k
	if mk, ok := k.(*ast.MappingKeyNode); ok { // "? key"
		n = mk.Value
	}
	kv := c.convert(n, path)
	switch kv.kind {
	case scalar:
		return kv.text, kv.line, true
	case null:
		return "", kv.line, true
	}
	c.p.add(path, kv.line, fmt.Errorf("a key must be a string, not %s", kv.kind))
	return "", 0, false
}
