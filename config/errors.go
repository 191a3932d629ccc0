package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/figway/figway/config/yamlfile"
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

// joinProblems joins the problems of a load, in the order of the file,
// one FieldError each; past the first hundred, one more says how many were
// left out.
func joinProblems(p *yamlfile.Problems) error {
	kept, more := p.Sorted()
	if len(kept) == 0 && more == 0 {
		return nil
	}
	errs := make([]error, len(kept), len(kept)+1)
	for i, e := range kept {
		errs[i] = &FieldError{Path: e.Path, Line: e.Line, Err: e.Err}
	}
	if more > 0 {
		errs = append(errs, &FieldError{Err: fmt.Errorf("and %d more problems", more)})
	}
	return errors.Join(errs...)
}
