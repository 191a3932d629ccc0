package yamlfile

import (
	"strings"
	"testing"
	"time"
)

// parse parses src and fails the test on a problem.
func parse(t *testing.T, src string) (*Value, *Problems) {
	t.Helper()
	p := NewProblems()
	v, ok := Parse([]byte(src), p)
	if !ok {
		kept, _ := p.Sorted()
		t.Fatalf("Parse(%q) failed: %v", src, kept)
	}
	return v, p
}

// TestParseKeepsLinesAndOrder: every value carries its line, mappings keep
// the file's order, scalars their type and their source text.
func TestParseKeepsLinesAndOrder(t *testing.T) {
	v, _ := parse(t, "b: 1\na:\n  - x\n  - 2.5\nc: true\nd: '042'\n")
	if v.Kind != Mapping || len(v.Members) != 4 {
		t.Fatalf("root = %v with %d members; want a mapping of 4", v.Kind, len(v.Members))
	}
	var keys []string
	for _, m := range v.Members {
		keys = append(keys, m.Key)
	}
	if got := strings.Join(keys, ","); got != "b,a,c,d" {
		t.Errorf("keys in order %s; want b,a,c,d", got)
	}
	a := v.Members[1]
	if a.Line != 2 || a.Val.Kind != Sequence || len(a.Val.Items) != 2 || a.Val.Items[1].Line != 4 {
		t.Errorf("a = line %d, %v of %d items; want line 2, a list of 2 with its second on line 4", a.Line, a.Val.Kind, len(a.Val.Items))
	}
	if n, ok := v.Members[0].Val.V.(int64); !ok || n != 1 {
		t.Errorf("b = %#v; want int64 1", v.Members[0].Val.V)
	}
	if f, ok := a.Val.Items[1].V.(float64); !ok || f != 2.5 {
		t.Errorf("a[1] = %#v; want float64 2.5", a.Val.Items[1].V)
	}
	if b, ok := v.Members[2].Val.V.(bool); !ok || !b {
		t.Errorf("c = %#v; want true", v.Members[2].Val.V)
	}
	if d := v.Members[3].Val; d.V != "042" || d.Text != "042" {
		t.Errorf("d = %#v (text %q); want the string 042", d.V, d.Text)
	}
}

// TestParseRefuses: text that is not one readable YAML document is refused
// (ok false: nothing else is looked at) with one problem and its line; an
// alias bomb is reported at the alias that crosses the bound, and the rest
// of the file is still read for other problems.
func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
		ok              bool
	}{
		{"syntax", "a: [1, 2\nb: 3\n", "yaml syntax", false},
		{"two documents", "a: 1\n---\nb: 2\n", "document", false},
		{"nesting", strings.Repeat("[", 10000) + strings.Repeat("]", 10000), "nest", false},
		{"alias bomb", aliasBomb(), "aliases expand", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewProblems()
			start := time.Now()
			_, ok := Parse([]byte(tc.src), p)
			kept, _ := p.Sorted()
			if ok != tc.ok || len(kept) != 1 || !strings.Contains(strings.ToLower(kept[0].Err.Error()), tc.want) {
				t.Fatalf("Parse = ok %v, problems %v; want ok %v and one problem mentioning %q", ok, kept, tc.ok, tc.want)
			}
			t.Logf("%s: %v (line %d) in %v", tc.name, kept[0].Err, kept[0].Line, time.Since(start).Round(time.Millisecond))
		})
	}
}

// aliasBomb is a "billion laughs" file: each level repeats the one before
// it ten times.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// TestDecoderReportsWithPathAndLine: the decoder's typed readers report a
// value of the wrong kind, an unknown key (with a suggestion), a bad
// duration and an unknown enum value at the value's path and line, and
// leave null values out.
func TestDecoderReportsWithPathAndLine(t *testing.T) {
	v, p := parse(t, "timeout: 5\nname: [a]\nmode: fast\nwait: 2s\nretry: ~\ntimeuot: 1s\n")
	d := &Decoder{P: p}
	f := d.Fields(v, "route", "timeout", "name", "mode", "wait", "retry")
	if _, ok := f["retry"]; ok {
		t.Error("a null value was returned; want it left out")
	}
	if got := d.Duration(f["wait"], "route.wait"); got != 2*time.Second {
		t.Errorf("Duration(wait) = %v; want 2s", got)
	}
	d.Duration(f["timeout"], "route.timeout")
	d.Str(f["name"], "route.name")
	Enum(d, f["mode"], "route.mode", "slow", "steady")
	kept, more := p.Sorted()
	got := map[string]string{}
	for _, pr := range kept {
		got[pr.Path] = pr.Err.Error()
		t.Logf("line %d %s: %v", pr.Line, pr.Path, pr.Err)
	}
	want := map[string]string{
		"route.timeout": "want a number with a unit",
		"route.name":    "a string",
		"route.mode":    `unknown value "fast"; want slow or steady`,
		"route.timeuot": `did you mean "timeout"?`,
	}
	for path, frag := range want {
		if !strings.Contains(got[path], frag) {
			t.Errorf("problem at %s = %q; want it to say %q", path, got[path], frag)
		}
	}
	if len(kept) != len(want) || more != 0 {
		t.Errorf("%d problems (%d more); want %d", len(kept), more, len(want))
	}
	for i := 1; i < len(kept); i++ {
		if kept[i].Line < kept[i-1].Line {
			t.Errorf("problems not in the file's order: %v", kept)
		}
	}
}

// TestProblemsAreBounded: past 100 problems one load reports the first 100
// in the file's order and counts the rest, holding at most 1,000.
func TestProblemsAreBounded(t *testing.T) {
	p := NewProblems()
	for i := range 5000 {
		p.At(Index("routes", i), "bad route %d", i)
	}
	kept, more := p.Sorted()
	if len(kept) != maxProblems || more != 5000-maxProblems || len(p.errs) != maxKept {
		t.Errorf("kept %d, more %d, held %d; want %d, %d, %d", len(kept), more, len(p.errs), maxProblems, 5000-maxProblems, maxKept)
	}
}
