package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// traceContext continues the caller's W3C trace (https://www.w3.org/TR/trace-context/)
// with a new span id for the hop through figway, or starts a new trace when
// the caller sent none or an invalid one. tracestate travels only with a
// valid traceparent, bounded by [boundTracestate].
func traceContext(traceparent, tracestate string) (string, string) {
	b := []byte("00-00000000000000000000000000000000-0000000000000000-01")
	if validTraceparent(traceparent) {
		copy(b[3:35], traceparent[3:35])
		copy(b[53:55], traceparent[53:55])
	} else {
		var id [16]byte
		rand.Read(id[:])
		hex.Encode(b[3:35], id[:])
		tracestate = ""
	}
	var span [8]byte
	rand.Read(span[:])
	hex.Encode(b[36:52], span[:])
	return string(b), boundTracestate(tracestate)
}

// W3C trace context limits on tracestate: what every participant must
// propagate, and how long one list member may be before it is the first
// to go (https://www.w3.org/TR/trace-context/#tracestate-limits).
const (
	maxTracestateMembers = 32
	maxTracestateChars   = 512
	maxTracestateMember  = 128
)

// boundTracestate returns tracestate as figway propagates it: unchanged
// when it has at most 32 list members and 512 characters; otherwise
// truncated as the W3C spec allows — members longer than 128 characters
// go first, then members from the right — until it fits, which may leave
// nothing. A hostile caller's 200 KB tracestate so never reaches the
// message headers (docs/wire-protocol.md, "Size of the headers").
func boundTracestate(s string) string {
	if len(s) <= maxTracestateChars && strings.Count(s, ",") < maxTracestateMembers {
		return s
	}
	var kept []string
	n := 0 // characters of kept, commas included
	for m := range strings.SplitSeq(s, ",") {
		m = strings.Trim(m, " \t")
		switch {
		case m == "":
			continue
		case len(m) > maxTracestateMember:
			continue // the long ones go first
		case len(kept) == maxTracestateMembers || n+len(m)+min(n, 1) > maxTracestateChars:
			// Members from the right are dropped, so nothing after the
			// first one that does not fit is kept.
			return strings.Join(kept, ",")
		}
		kept = append(kept, m)
		n += len(m) + min(n, 1)
	}
	return strings.Join(kept, ",")
}

// validTraceparent accepts version-00 traceparents: 00-<32 hex trace id,
// not all zero>-<16 hex parent id, not all zero>-<2 hex flags>.
func validTraceparent(s string) bool {
	if len(s) != 55 || s[0] != '0' || s[1] != '0' || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	return lowerHex(s[3:35]) && lowerHex(s[36:52]) && lowerHex(s[53:55]) &&
		s[3:35] != "00000000000000000000000000000000" && s[36:52] != "0000000000000000"
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
