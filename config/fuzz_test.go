package config

import (
	"errors"
	"testing"
)

// FuzzParse checks that no routes file makes Parse panic, and that it
// returns either a complete Config or problems, never both nor neither.
// Seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	writeSet(f, dir, "api.binpb", apiProto())
	f.Add([]byte(fullFile))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, dir)
		switch {
		case err == nil && c == nil:
			t.Fatalf("Parse(%q) = nil, nil; want a Config or an error", data)
		case err != nil && c != nil:
			t.Fatalf("Parse(%q) = %v, %v; want no Config with an error", data, c, err)
		case err != nil:
			var errs []error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			}
			if len(errs) == 0 {
				t.Fatalf("Parse(%q) = %v; want errors joined", data, err)
			}
			for _, e := range errs {
				var fe *FieldError
				if !errors.As(e, &fe) || fe.Err == nil || fe.Error() == "" {
					t.Fatalf("Parse(%q): problem %#v; want a *FieldError with a message", data, e)
				}
			}
		default:
			for i, r := range c.Routes {
				if r.Desc == nil || r.Timeout <= 0 || r.MaxInFlight <= 0 || r.Breaker.Failures <= 0 || r.To == "" {
					t.Fatalf("Parse(%q): routes[%d] = %+v; want it resolved and defaulted", data, i, r)
				}
			}
		}
	})
}
