package yamlfile

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Decoder reads the values of a [Value] tree one by one. Each method
// checks one value on its own (type, syntax, range, allowed values),
// reports what is wrong to P and records the line of every path it sees;
// checks that involve several values are the caller's.
//
// A key whose value is null (written "key:" or "key: ~") counts as absent.
type Decoder struct {
	P *Problems
}

// Fields checks that v is a mapping whose keys are all among known and
// returns its values by key; null values are left out. A null v gives an
// empty map.
func (d *Decoder) Fields(v *Value, path string, known ...string) map[string]*Value {
	out := map[string]*Value{}
	if v == nil || v.Kind == Null {
		return out
	}
	if v.Kind != Mapping {
		d.WrongType(v, path, "a mapping")
		return out
	}
	for _, m := range v.Members {
		p := Field(path, m.Key)
		if !slices.Contains(known, m.Key) {
			d.P.Add(p, m.Line, UnknownField(m.Key, known))
			continue
		}
		d.P.Lines[p] = m.Line
		if m.Val.Kind != Null {
			out[m.Key] = m.Val
		}
	}
	return out
}

func UnknownField(key string, known []string) error {
	if s := Suggest(key, known); s != "" {
		return fmt.Errorf("unknown field (did you mean %q?)", s)
	}
	return fmt.Errorf("unknown field; known fields are %s", AllOf(known))
}

func AllOf(values []string) string {
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

// WrongType reports that v, at path, is not what was wanted.
func (d *Decoder) WrongType(v *Value, path, want string) {
	got := v.Kind.String()
	if v.Kind == Scalar {
		got = strconv.Quote(v.Text)
		if _, isString := v.V.(string); !isString {
			got = v.Text
		}
	}
	d.P.Add(path, v.Line, fmt.Errorf("want %s, not %s", want, got))
}

// Items checks that v is a list and returns its items, recording their
// lines. present reports whether v was given at all, so that an explicit
// empty list can be told from a missing one.
func (d *Decoder) Items(v *Value, path string) (items []*Value, present bool) {
	if v == nil || v.Kind == Null {
		return nil, false
	}
	if v.Kind != Sequence {
		d.WrongType(v, path, "a list")
		return nil, false
	}
	for i, it := range v.Items {
		d.P.Lines[Index(path, i)] = it.Line
	}
	return v.Items, true
}

// Str returns a string value. Numbers are taken as the text they are
// written with, so routing_key: 42 means "42".
func (d *Decoder) Str(v *Value, path string) string {
	s, _ := d.StrOK(v, path)
	return s
}

// StrOK is str that also reports whether v was a string: false when it is
// absent or of another type (which it reports).
func (d *Decoder) StrOK(v *Value, path string) (string, bool) {
	if v == nil || v.Kind == Null {
		return "", false
	}
	if v.Kind == Scalar {
		switch v.V.(type) {
		case string, int64, uint64, float64:
			return v.Text, true
		}
		d.WrongType(v, path, "a string (quote it to write "+strconv.Quote(v.Text)+")")
		return "", false
	}
	d.WrongType(v, path, "a string")
	return "", false
}

// strItem is a string of a list, with its path.
type StrItem struct {
	Path, S string
}

// Strs returns the strings of a list, leaving out (and reporting) items of
// another type. present tells an explicit empty list from a missing one.
func (d *Decoder) Strs(v *Value, path string) (out []StrItem, present bool) {
	items, present := d.Items(v, path)
	for i, it := range items {
		p := Index(path, i)
		if s, ok := d.StrOK(it, p); ok {
			out = append(out, StrItem{Path: p, S: s})
		} else if it.Kind == Null {
			d.WrongType(it, p, "a string")
		}
	}
	return out, present
}

func (d *Decoder) Bool(v *Value, path string) bool {
	if v == nil || v.Kind == Null {
		return false
	}
	if b, ok := v.V.(bool); ok && v.Kind == Scalar {
		return b
	}
	d.WrongType(v, path, "true or false")
	return false
}

// Positive returns an integer that must be at least 1 and at most limit;
// why, if not empty, says why the limit. Leaving the key out gives the
// default; writing 0 is a mistake.
func (d *Decoder) Positive(v *Value, path string, limit int, why string) int {
	if v == nil || v.Kind == Null {
		return 0
	}
	var n int64
	isInt := v.Kind == Scalar
	switch x := v.V.(type) {
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
		d.WrongType(v, path, "an integer")
		return 0
	}
	switch {
	case n < 1:
		d.P.Add(path, v.Line, fmt.Errorf("must be at least 1, not %d (leave the key out for the default)", n))
		return 0
	case n > int64(limit):
		d.P.Add(path, v.Line, fmt.Errorf("must be at most %d, not %s%s", limit, v.Text, why))
		return 0
	}
	return int(n)
}

// Duration returns a positive duration written in Go's syntax.
func (d *Decoder) Duration(v *Value, path string) time.Duration {
	if v == nil || v.Kind == Null {
		return 0
	}
	s, ok := v.V.(string)
	if v.Kind != Scalar || !ok {
		switch v.V.(type) {
		case int64, uint64, float64:
			d.P.Add(path, v.Line, fmt.Errorf("invalid duration %s: want a number with a unit, such as %ss", v.Text, v.Text))
		default:
			d.WrongType(v, path, "a duration such as 1500ms or 2s")
		}
		return 0
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.P.Add(path, v.Line, fmt.Errorf("invalid duration %q: want Go syntax such as 1500ms, 2s or 1m30s", s))
		return 0
	}
	if dur <= 0 {
		d.P.Add(path, v.Line, fmt.Errorf("must be positive, not %s (leave the key out for the default)", s))
		return 0
	}
	return dur
}

// enum returns a string that must be one of allowed; an unknown value is
// reported and returned as it is, so that validate can tell it from an
// absent one and skip the checks that depend on it.
func Enum[S ~string](d *Decoder, v *Value, path string, allowed ...S) S {
	if v == nil || v.Kind == Null {
		return ""
	}
	str, ok := d.StrOK(v, path)
	s := S(str)
	if !ok {
		return ""
	}
	if !slices.Contains(allowed, s) {
		d.P.Add(path, v.Line, fmt.Errorf("unknown value %q; want %s", s, OneOf(allowed...)))
	}
	return s
}
