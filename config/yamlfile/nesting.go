package yamlfile

import "errors"

// Nesting limits, far beyond the half a dozen levels a routes file has.
// goccy/go-yaml takes time quadratic in the depth of nesting (100,000
// nested "[" take most of a minute, and as many "- " all the memory), so
// depth is bounded before parsing: a reload must not be a denial of
// service.
const (
	maxFlowDepth  = 64  // nested [ and {
	maxBlockDepth = 512 // indentation columns plus "- " and "? " on a line
)

// checkNesting estimates the nesting depth of a YAML text without parsing
// it, and returns the line where it is too deep. It errs on the side of
// depth: a quoted string is skipped up to the end of its line only, and
// brackets in block scalars count.
func checkNesting(data []byte) (line int, err error) {
	line, flow := 1, 0
	for i := 0; i < len(data); {
		// At the start of a line: indentation and block indicators.
		depth := 0
		for i < len(data) && (data[i] == ' ' || data[i] == '\t') {
			depth++
			i++
		}
		for i+1 < len(data) && (data[i] == '-' || data[i] == '?') && (data[i+1] == ' ' || data[i+1] == '\t') {
			depth += 2
			i += 2
			for i < len(data) && (data[i] == ' ' || data[i] == '\t') {
				depth++
				i++
			}
		}
		if depth > maxBlockDepth {
			return line, errors.New("nested or indented deeper than 512 levels")
		}
		// The rest of the line: flow collections, quotes and comments.
		start := i
		for i < len(data) && data[i] != '\n' {
			c := data[i]
			// Quotes and comments start a token only after a separator:
			// in it's and a#b they are part of a plain scalar.
			atToken := i == start || isSeparator(data[i-1])
			switch {
			case c == '[' || c == '{':
				flow++
				if flow > maxFlowDepth {
					return line, errors.New("[ and { nested deeper than 64 levels")
				}
			case c == ']' || c == '}':
				flow = max(flow-1, 0)
			case (c == '"' || c == '\'') && atToken:
				for i++; i < len(data) && data[i] != c && data[i] != '\n'; i++ {
					if data[i] == '\\' && c == '"' && i+1 < len(data) && data[i+1] != '\n' {
						i++
					}
				}
				if i == len(data) || data[i] == '\n' {
					continue
				}
			case c == '#' && atToken:
				for i < len(data) && data[i] != '\n' {
					i++
				}
				continue
			}
			i++
		}
		if i < len(data) {
			line++
			i++
		}
	}
	return 0, nil
}

func isSeparator(c byte) bool {
	switch c {
	case ' ', '\t', '[', '{', ',':
		return true
	}
	return false
}
