package wire

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ErrBadTimeout is wrapped by the errors of [ParseGRPCTimeout].
var ErrBadTimeout = errors.New("bad grpc-timeout")

// ParseGRPCTimeout parses a grpc-timeout header value: 1 to 8 ASCII digits
// followed by one unit of H, M, S, m, u or n (gRPC over HTTP/2 spec).
func ParseGRPCTimeout(s string) (time.Duration, error) {
	if len(s) < 2 || len(s) > 9 {
		return 0, fmt.Errorf("%w %q: want 1-8 digits and a unit (H M S m u n)", ErrBadTimeout, s)
	}
	digits, unit := s[:len(s)-1], s[len(s)-1]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, fmt.Errorf("%w %q: want 1-8 digits and a unit (H M S m u n)", ErrBadTimeout, s)
		}
	}
	n, _ := strconv.ParseInt(digits, 10, 64) // at most 8 digits: cannot overflow
	var d time.Duration
	switch unit {
	case 'H':
		d = time.Hour
	case 'M':
		d = time.Minute
	case 'S':
		d = time.Second
	case 'm':
		d = time.Millisecond
	case 'u':
		d = time.Microsecond
	case 'n':
		d = time.Nanosecond
	default:
		return 0, fmt.Errorf("%w %q: unknown unit %q (want H M S m u n)", ErrBadTimeout, s, unit)
	}
	// 99999999H overflows time.Duration (~292 years); saturate, as grpc-go does.
	const maxDuration = time.Duration(1<<63 - 1)
	if n > int64(maxDuration/d) {
		return maxDuration, nil
	}
	return time.Duration(n) * d, nil
}
