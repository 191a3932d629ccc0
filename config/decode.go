package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// decoder turns the value tree into a Config. It checks each value on its
// own (type, syntax, range, allowed values) and records the line of every
// path it sees; checks that involve several values are validate's.
//
// A key whose value is null (written "key:" or "key: ~") counts as absent.
type decoder struct {
	p *problems

	// descriptors are the paths listed by the key descriptors, as written.
	descriptors []strItem

	// broken holds the paths of list items that were not mappings (a
	// route written as a string, say): validate skips them rather than
	// report every field of them missing.
	broken map[string]bool
}

// object is fields for an item of a list, which it marks broken when it is
// not a mapping.
func (d *decoder) object(v *value, path string, known ...string) map[string]*value {
	if v.kind != mapping {
		d.broken[path] = true
	}
	if v.kind == null {
		d.wrongType(v, path, "a mapping")
	}
	return d.fields(v, path, known...)
}

// fields checks that v is a mapping whose keys are all among known and
// returns its values by key; null values are left out. A null v gives an
// empty map.
func (d *decoder) fields(v *value, path string, known ...string) map[string]*value {
	out := map[string]*value{}
	if v == nil || v.kind == null {
		return out
	}
	if v.kind != mapping {
		d.wrongType(v, path, "a mapping")
		return out
	}
	for _, m := range v.members {
		p := field(path, m.key)
		if !slices.Contains(known, m.key) {
			d.p.add(p, m.line, unknownField(m.key, known))
			continue
		}
		d.p.lines[p] = m.line
		if m.val.kind != null {
			out[m.key] = m.val
		}
	}
	return out
}

func unknownField(key string, known []string) error {
	if s := suggest(key, known); s != "" {
		return fmt.Errorf("unknown field (did you mean %q?)", s)
	}
	return fmt.Errorf("unknown field; known fields are %s", allOf(known))
}

func allOf(values []string) string {
	switch len(values) {
	case 0:
		return ""
	case 1:
		return values[0]
	}
	s := ""
	for _, v := range values[:len(values)-1] {
		if s != "" {
			s += ", "
		}
		s += v
	}
	return s + " and " + values[len(values)-1]
}

// wrongType reports that v, at path, is not what was wanted.
func (d *decoder) wrongType(v *value, path, want string) {
	got := v.kind.String()
	if v.kind == scalar {
		got = strconv.Quote(v.text)
		if _, isString := v.v.(string); !isString {
			got = v.text
		}
	}
	d.p.add(path, v.line, fmt.Errorf("want %s, not %s", want, got))
}

// items checks that v is a list and returns its items, recording their
// lines. present reports whether v was given at all, so that an explicit
// empty list can be told from a missing one.
func (d *decoder) items(v *value, path string) (items []*value, present bool) {
	if v == nil || v.kind == null {
		return nil, false
	}
	if v.kind != sequence {
		d.wrongType(v, path, "a list")
		return nil, false
	}
	for i, it := range v.items {
		d.p.lines[index(path, i)] = it.line
	}
	return v.items, true
}

// str returns a string value. Numbers are taken as the text they are
// written with, so routing_key: 42 means "42".
func (d *decoder) str(v *value, path string) string {
	s, _ := d.strOK(v, path)
	return s
}

// strOK is str that also reports whether v was a string: false when it is
// absent or of another type (which it reports).
func (d *decoder) strOK(v *value, path string) (string, bool) {
	if v == nil || v.kind == null {
		return "", false
	}
	if v.kind == scalar {
		switch v.v.(type) {
		case string, int64, uint64, float64:
			return v.text, true
		}
		d.wrongType(v, path, "a string (quote it to write "+strconv.Quote(v.text)+")")
		return "", false
	}
	d.wrongType(v, path, "a string")
	return "", false
}

// strItem is a string of a list, with its path.
type strItem struct {
	path, s string
}

// strs returns the strings of a list, leaving out (and reporting) items of
// another type. present tells an explicit empty list from a missing one.
func (d *decoder) strs(v *value, path string) (out []strItem, present bool) {
	items, present := d.items(v, path)
	for i, it := range items {
		p := index(path, i)
		if s, ok := d.strOK(it, p); ok {
			out = append(out, strItem{p, s})
		} else if it.kind == null {
			d.wrongType(it, p, "a string")
		}
	}
	return out, present
}

func (d *decoder) boolean(v *value, path string) bool {
	if v == nil || v.kind == null {
		return false
	}
	if b, ok := v.v.(bool); ok && v.kind == scalar {
		return b
	}
	d.wrongType(v, path, "true or false")
	return false
}

// positive returns an integer that must be at least 1 and at most limit;
// why, if not empty, says why the limit. Leaving the key out gives the
// default; writing 0 is a mistake.
func (d *decoder) positive(v *value, path string, limit int, why string) int {
	if v == nil || v.kind == null {
		return 0
	}
	var n int64
	isInt := v.kind == scalar
	switch x := v.v.(type) {
	case int64:
		n = x
	case uint64:
		n = math.MaxInt64
	case string:
		// Beyond uint64, the YAML parser leaves digits a string.
		if _, err := strconv.ParseInt(x, 10, 64); errors.Is(err, strconv.ErrRange) {
			n = math.MaxInt64
			if strings.HasPrefix(x, "-") {
				n = math.MinInt64
			}
			break
		}
		isInt = false
	default:
		isInt = false
	}
	if !isInt {
		d.wrongType(v, path, "an integer")
		return 0
	}
	switch {
	case n < 1:
		d.p.add(path, v.line, fmt.Errorf("must be at least 1, not %d (leave the key out for the default)", n))
		return 0
	case n > int64(limit):
		d.p.add(path, v.line, fmt.Errorf("must be at most %d, not %s%s", limit, v.text, why))
		return 0
	}
	return int(n)
}

// duration returns a positive duration written in Go's syntax.
func (d *decoder) duration(v *value, path string) time.Duration {
	if v == nil || v.kind == null {
		return 0
	}
	s, ok := v.v.(string)
	if v.kind != scalar || !ok {
		switch v.v.(type) {
		case int64, uint64, float64:
			d.p.add(path, v.line, fmt.Errorf("invalid duration %s: want a number with a unit, such as %ss", v.text, v.text))
		default:
			d.wrongType(v, path, "a duration such as 1500ms or 2s")
		}
		return 0
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.p.add(path, v.line, fmt.Errorf("invalid duration %q: want Go syntax such as 1500ms, 2s or 1m30s", s))
		return 0
	}
	if dur <= 0 {
		d.p.add(path, v.line, fmt.Errorf("must be positive, not %s (leave the key out for the default)", s))
		return 0
	}
	return dur
}

// enum returns a string that must be one of allowed; an unknown value is
// reported and returned as it is, so that validate can tell it from an
// absent one and skip the checks that depend on it.
func enum[S ~string](d *decoder, v *value, path string, allowed ...S) S {
	if v == nil || v.kind == null {
		return ""
	}
	str, ok := d.strOK(v, path)
	s := S(str)
	if !ok {
		return ""
	}
	if !slices.Contains(allowed, s) {
		d.p.add(path, v.line, fmt.Errorf("unknown value %q; want %s", s, oneOf(allowed...)))
	}
	return s
}
