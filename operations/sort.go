package operations

import (
	"cmp"
	"slices"
)

// sortOperations orders ops by start time, then id.
func sortOperations(ops []Operation) {
	slices.SortFunc(ops, func(a, b Operation) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}
