package yamlfile

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is one problem of a YAML file: the path of the offending value
// (e.g. "routes[3].timeout", empty for the whole file), its 1-based line
// (0 when not known) and what is wrong.
type Problem struct {
	Path string
	Line int
	Err  error
}

// Problems collects the problems of one load. Paths are looked up in
// Lines, the line of every value the YAML decoder saw; a path it did not
// see (a key left out) takes the line of its nearest ancestor.
type Problems struct {
	errs  []Problem
	Lines map[string]int

	// Renames maps a path that validate uses to the one the file shows,
	// for the YAML shorthands: a single bind mapping is bind[0].
	Renames map[string]string

	// Reported holds the paths that have a problem.
	Reported map[string]bool

	// dropped counts problems past maxKept, not held.
	dropped int
}

func NewProblems() *Problems {
	return &Problems{Lines: map[string]int{}, Renames: map[string]string{}, Reported: map[string]bool{}}
}

// maxProblems is how many problems a load reports; past it, one more says
// how many were left out. maxKept bounds those held to pick the first
// maxProblems from, in the order of the file.
const (
	maxProblems = 100
	maxKept     = 10 * maxProblems
)

func (p *Problems) Add(path string, line int, err error) {
	p.Reported[path] = true
	if len(p.errs) >= maxKept {
		p.dropped++
		return
	}
	p.errs = append(p.errs, Problem{Path: path, Line: line, Err: err})
}

// Once reports a problem at path unless one is reported there already: a
// key that is required, say, is not "required" when its value was invalid.
func (p *Problems) Once(path, format string, args ...any) {
	if !p.Reported[p.rename(path)] {
		p.At(path, format, args...)
	}
}

// At reports a problem with the value at path.
func (p *Problems) At(path, format string, args ...any) {
	path = p.rename(path)
	p.Add(path, p.line(path), fmt.Errorf(format, args...))
}

func (p *Problems) rename(path string) string {
	for a := path; a != ""; a = Parent(a) {
		if to, ok := p.Renames[a]; ok {
			return to + path[len(a):]
		}
	}
	return path
}

func (p *Problems) line(path string) int {
	for path != "" {
		if l, ok := p.Lines[path]; ok {
			return l
		}
		path = Parent(path)
	}
	return 0
}

// parent returns "routes[3]" for "routes[3].timeout", "routes" for
// "routes[3]" and "" for "routes".
func Parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// Sorted returns the problems in the order of the file: those without a
// line (a key left out) first, then by line; problems of one line keep the
// order they were found. It returns at most maxProblems of them, and more
// counts those left out.
func (p *Problems) Sorted() (kept []Problem, more int) {
	slices.SortStableFunc(p.errs, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	kept = p.errs[:min(len(p.errs), maxProblems)]
	return kept, len(p.errs) - len(kept) + p.dropped
}

func Field(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func Index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// oneOf formats allowed values for a message: "a, b or c".
func OneOf[S ~string](values ...S) string {
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
func Suggest(s string, candidates []string) string {
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
