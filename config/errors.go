package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// FieldError is one problem of a routes file. The error of [Load] and
// [Parse] joins one FieldError per problem, with [errors.Join]; get them
// back with errors.As, or one by one with the Unwrap() []error method of
// the joined error.
type FieldError struct {
	// Path is the YAML path of the offending value, e.g.
	// "routes[3].timeout"; empty for a problem of the whole file.
	Path string

	// Line is the 1-based line of the value in the routes file, or 0 when
	// it is not known (a key left out, a problem of a descriptor set).
	Line int

	Err error
}

// Error returns "routes[3].timeout (line 14): invalid duration ...".
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Line > 0 {
		if e.Path == "" {
			b.WriteString("line " + strconv.Itoa(e.Line))
		} else {
			b.WriteString(" (line " + strconv.Itoa(e.Line) + ")")
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	// Whatever the mistake, a problem never shows a password: a URL given
	// where a list, a mapping or a key belongs is quoted as it came.
	return redactURLs(b.String())
}

func (e *FieldError) Unwrap() error { return e.Err }

// problems collects the FieldErrors of one load. Paths are looked up in
// lines, the line of every value the YAML decoder saw; a path it did not
// see (a key left out) takes the line of its nearest ancestor.
type problems struct {
	errs  []*FieldError
	lines map[string]int

	// renames maps a path that validate uses to the one the file shows,
	// for the YAML shorthands: a single bind mapping is bind[0].
	renames map[string]string

	// reported holds the paths that have a problem.
	reported map[string]bool

	// dropped counts problems past maxKept, not held.
	dropped int
}

func newProblems() *problems {
	return &problems{lines: map[string]int{}, renames: map[string]string{}, reported: map[string]bool{}}
}

// maxProblems is how many problems a load reports; past it, one more says
// how many were left out. maxKept bounds those held to pick the first
// maxProblems from, in the order of the file.
const (
	maxProblems = 100
	maxKept     = 10 * maxProblems
)

func (p *problems) add(path string, line int, err error) {
	p.reported[path] = true
	if len(p.errs) >= maxKept {
		p.dropped++
		return
	}
	p.errs = append(p.errs, &FieldError{Path: path, Line: line, Err: err})
}

// once reports a problem at path unless one is reported there already: a
// key that is required, say, is not "required" when its value was invalid.
func (p *problems) once(path, format string, args ...any) {
	if !p.reported[p.rename(path)] {
		p.at(path, format, args...)
	}
}

// at reports a problem with the value at path.
func (p *problems) at(path, format string, args ...any) {
	path = p.rename(path)
	p.add(path, p.line(path), fmt.Errorf(format, args...))
}

func (p *problems) rename(path string) string {
	for a := path; a != ""; a = parent(a) {
		if to, ok := p.renames[a]; ok {
			return to + path[len(a):]
		}
	}
	return path
}

func (p *problems) line(path string) int {
	for path != "" {
		if l, ok := p.lines[path]; ok {
			return l
		}
		path = parent(path)
	}
	return 0
}

// parent returns "routes[3]" for "routes[3].timeout", "routes" for
// "routes[3]" and "" for "routes".
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// err joins the problems, in the order of the file: those without a line
// (a key left out) first, then by line; problems of one line keep the
// order they were found.
func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(p.errs, func(a, b *FieldError) int { return cmp.Compare(a.Line, b.Line) })
	kept := p.errs[:min(len(p.errs), maxProblems)]
	errs := make([]error, len(kept), len(kept)+1)
	for i, e := range kept {
		errs[i] = e
	}
	if more := len(p.errs) - len(kept) + p.dropped; more > 0 {
		errs = append(errs, &FieldError{Err: fmt.Errorf("and %d more problems", more)})
	}
	return errors.Join(errs...)
}

func field(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// oneOf formats allowed values for a message: "a, b or c".
func oneOf[S ~string](values ...S) string {
	var b strings.Builder
	for i, v := range values {
		switch {
		case i == 0:
		case i == len(values)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(string(v))
	}
	return b.String()
}

// suggest returns the candidate closest to s, if it is close enough to be
// a likely typo, or "".
func suggest(s string, candidates []string) string {
	best, bestDist := "", 0
	for _, c := range candidates {
		d := distance(strings.ToLower(s), strings.ToLower(c))
		if best == "" || d < bestDist {
			best, bestDist = c, d
		}
	}
	// A third of the name, at least 1 and at most 3 edits.
	limit := min(max(len(s)/3, 1), 3)
	if best == "" || bestDist > limit {
		return ""
	}
	return best
}

// distance is the Levenshtein distance between a and b, in bytes.
func distance(a, b string) int {
	if len(a) > 256 || len(b) > 256 {
		// No typo of a name is that long; spare the quadratic work.
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
