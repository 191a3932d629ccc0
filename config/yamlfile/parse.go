// Package yamlfile reads a YAML file so that every mistake in it can be
// reported at once, each with its path and line. [Parse] turns the text
// into a tree of [Value]s that keep their line, with anchors, aliases,
// merge keys and tags resolved and nesting and alias expansion bounded; a
// [Decoder] then reads typed values from that tree, reporting each value
// of the wrong type, unknown key or bad duration to [Problems].
//
// The routes file (package config) is its user; the package knows nothing
// of routes.
package yamlfile

import (
	"errors"
	"fmt"
	"math"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// A file is read in two steps. Parse turns goccy/go-yaml's syntax tree
// into a tree of values that keep their line and have anchors, aliases,
// merge keys and tags resolved; the Decoder (decode.go) then walks that
// tree field by field. Walking it ourselves, rather than unmarshalling
// into structs, is what lets a load report every unknown key and every
// value of the wrong type, each with its path and line, instead of the
// first one only.

type Kind int

const (
	Null Kind = iota
	Scalar
	Mapping
	Sequence
)

func (k Kind) String() string {
	switch k {
	case Scalar:
		return "a scalar"
	case Mapping:
		return "a mapping"
	case Sequence:
		return "a list"
	}
	return "null"
}

// Value is a node of a YAML file, with its line.
type Value struct {
	Kind Kind
	Line int

	// scalar: v is a string, int64, uint64 (above MaxInt64 only), float64
	// or bool; text is its source text, without quotes.
	V    any
	Text string

	Members []Member // mapping, in the file's order
	Items   []*Value // sequence

	size int // nodes in this subtree, to bound alias expansion
}

type Member struct {
	Key  string
	Line int
	Val  *Value
}

// maxAliasNodes bounds how many nodes aliases may repeat in one file, so
// that a "billion laughs" file is refused instead of eating the machine.
const maxAliasNodes = 1 << 16

type converter struct {
	anchors map[string]*Value
	aliased int
	p       *Problems
}

// Parse parses one YAML document. It returns nil for an empty
// document, and ok false when the text is not YAML it can read at all (a
// syntax error, nesting too deep, two documents): the only problems after
// which a load does not go on to look for others.
func Parse(data []byte, p *Problems) (root *Value, ok bool) {
	if line, err := checkNesting(data); err != nil {
		p.Add("", line, err)
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
			p.Add("", line, fmt.Errorf("YAML syntax: %s", yerr.GetMessage()))
		} else {
			p.Add("", 0, fmt.Errorf("YAML syntax: %w", err))
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
		p.Add("", lineOf(docs[1]), errors.New("a routes file holds one YAML document; found a second one"))
		return nil, false
	}
	c := &converter{anchors: map[string]*Value{}, p: p}
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
func (c *converter) convert(n ast.Node, path string) *Value {
	line := lineOf(n)
	switch n := n.(type) {
	case nil, *ast.NullNode:
		return &Value{Kind: Null, Line: line, size: 1}
	case *ast.DocumentNode:
		return c.convert(n.Body, path)
	case *ast.CommentNode, *ast.CommentGroupNode:
		return &Value{Kind: Null, Line: line, size: 1}
	case *ast.AnchorNode:
		v := c.convert(n.Value, path)
		if n.Name != nil && n.Name.GetToken() != nil {
			c.anchors[n.Name.GetToken().Value] = v
		}
		return v
	case *ast.AliasNode:
		return c.alias(n, path, line)
	case *ast.TagNode:
		v := c.convert(n.Value, path)
		if n.Start != nil && n.Start.Value == "!!str" && v.Kind == Scalar {
			return &Value{Kind: Scalar, Line: v.Line, V: v.Text, Text: v.Text, size: 1}
		}
		return v
	case *ast.MappingNode:
		return c.Mapping(n.Values, path, line)
	case *ast.MappingValueNode:
		return c.Mapping([]*ast.MappingValueNode{n}, path, line)
	case *ast.SequenceNode:
		return c.sequence(n, path, line)
	case *ast.LiteralNode:
		s := ""
		if n.Value != nil {
			s = n.Value.Value
		}
		return &Value{Kind: Scalar, Line: line, V: s, Text: s, size: 1}
	case ast.ScalarNode:
		return scalar(n, line)
	}
	c.p.Add(path, line, fmt.Errorf("unsupported YAML node %s", n.Type()))
	return &Value{Kind: Null, Line: line, size: 1}
}

// alias returns the value of the anchor n names, or null when there is
// none or the file's aliases have expanded past maxAliasNodes.
func (c *converter) alias(n *ast.AliasNode, path string, line int) *Value {
	name := ""
	if n.Value != nil && n.Value.GetToken() != nil {
		name = n.Value.GetToken().Value
	}
	v, ok := c.anchors[name]
	if !ok {
		c.p.Add(path, line, fmt.Errorf("alias *%s names no anchor defined before it", name))
		return &Value{Kind: Null, Line: line, size: 1}
	}
	c.aliased += v.size
	if c.aliased > maxAliasNodes {
		if c.aliased-v.size <= maxAliasNodes { // report once
			c.p.Add(path, line, fmt.Errorf("aliases expand to more than %d values", maxAliasNodes))
		}
		return &Value{Kind: Null, Line: line, size: 1}
	}
	return v
}

func (c *converter) sequence(n *ast.SequenceNode, path string, line int) *Value {
	v := &Value{Kind: Sequence, Line: line, size: 1}
	for i, item := range n.Values {
		iv := c.convert(item, Index(path, i))
		v.Items = append(v.Items, iv)
		v.size += iv.size
	}
	return v
}

// scalar is n's value and source text; a null scalar is Null.
func scalar(n ast.ScalarNode, line int) *Value {
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
		return &Value{Kind: Null, Line: line, size: 1}
	default:
		v = text
	}
	return &Value{Kind: Scalar, Line: line, V: v, Text: text, size: 1}
}

func (c *converter) Mapping(pairs []*ast.MappingValueNode, path string, line int) *Value {
	v := &Value{Kind: Mapping, Line: line, size: 1}
	seen := map[string]int{} // key → line of its first appearance
	var merged []*Value
	for _, mv := range pairs {
		if mv == nil {
			continue
		}
		if mv.Key != nil && mv.Key.IsMergeKey() {
			merged = append(merged, c.convert(mv.Value, Field(path, "<<")))
			continue
		}
		key, keyLine, ok := c.key(mv.Key, path)
		if !ok {
			continue
		}
		if first, dup := seen[key]; dup {
			c.p.Add(Field(path, key), keyLine, fmt.Errorf("duplicate key (first on line %d)", first))
			continue
		}
		seen[key] = keyLine
		val := c.convert(mv.Value, Field(path, key))
		if val.Line == 0 {
			val.Line = keyLine
		}
		v.Members = append(v.Members, Member{Key: key, Line: keyLine, Val: val})
		v.size += val.size
	}
	// Merge keys (<<: *base) bring in the members of other mappings; keys
	// written out in this mapping win, then the first merged mapping that
	// has the key.
	for _, m := range merged {
		var sources []*Value
		switch m.Kind {
		case Mapping:
			sources = []*Value{m}
		case Sequence:
			sources = m.Items
		}
		if len(sources) == 0 && m.Kind != Null {
			c.p.Add(Field(path, "<<"), m.Line, errors.New("a merge key takes a mapping or a list of mappings"))
		}
		for _, s := range sources {
			if s.Kind != Mapping {
				c.p.Add(Field(path, "<<"), s.Line, errors.New("a merge key takes a mapping or a list of mappings"))
				continue
			}
			for _, sm := range s.Members {
				if _, dup := seen[sm.Key]; dup {
					continue
				}
				seen[sm.Key] = sm.Line
				v.Members = append(v.Members, sm)
				v.size += sm.Val.size
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
	switch kv.Kind {
	case Scalar:
		return kv.Text, kv.Line, true
	case Null:
		return "", kv.Line, true
	}
	c.p.Add(path, kv.Line, fmt.Errorf("a key must be a string, not %s", kv.Kind))
	return "", 0, false
}
