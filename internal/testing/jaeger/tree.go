package jaeger

import (
	"fmt"
	"slices"
	"strings"
)

// Tree renders tr as its spans' tree: each span under its parent, with
// its service, kind, name, duration and the tags in show (all of them if
// show is empty), and its links.
func (tr *Trace) Tree(show ...string) string {
	children := map[string][]Span{}
	ids := map[string]bool{}
	for _, s := range tr.Spans {
		ids[s.SpanID] = true
	}
	var roots []Span
	for _, s := range tr.Spans {
		if p := s.Parent(); p != "" && ids[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	byStart := func(a, b Span) int { return int(a.StartTime - b.StartTime) }
	slices.SortFunc(roots, byStart)
	var b strings.Builder
	fmt.Fprintf(&b, "trace %s\n", tr.TraceID)
	var walk func(s Span, depth int)
	walk = func(s Span, depth int) {
		indent := strings.Repeat("  ", depth)
		fmt.Fprintf(&b, "%s└ %s  %s %s  (%dµs)\n", indent, tr.Processes[s.ProcessID].ServiceName, strings.ToUpper(s.Kind()), s.OperationName, s.Duration)
		for _, kv := range s.Tags {
			if (len(show) == 0 && !strings.HasPrefix(kv.Key, "otel.")) || slices.Contains(show, kv.Key) {
				fmt.Fprintf(&b, "%s    %s=%v\n", indent, kv.Key, kv.Value)
			}
		}
		if ev := s.Events(); len(ev) > 0 {
			fmt.Fprintf(&b, "%s    events: %s\n", indent, strings.Join(ev, ", "))
		}
		for _, r := range s.References {
			if r.RefType != "CHILD_OF" || !ids[r.SpanID] {
				fmt.Fprintf(&b, "%s    %s %s/%s\n", indent, strings.ToLower(r.RefType), r.TraceID, r.SpanID)
			}
		}
		kids := children[s.SpanID]
		slices.SortFunc(kids, byStart)
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}
