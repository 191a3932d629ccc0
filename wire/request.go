package wire

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Request is one call as figway publishes it.
type Request struct {
	Method      string // full method name, "orders.v1.OrderService/GetOrder"
	Body        []byte
	ContentType string
	MessageID   string // event id (and cloudEvents:id when CloudEvents is set)
	Source      string // cloudEvents:source: the publishing instance, e.g. "figway://host"
	// CloudEvents adds the cloudEvents:* headers (CloudEvents 1.0, AMQP
	// binding, binary mode). figway sets it on events, and on rpc requests
	// only for routes with wire: {cloudevents: always}: the attributes
	// repeat properties every request carries (message_id, type,
	// timestamp, app_id), and the headers table is most of what a message
	// costs the broker to route (docs/performance.md).
	CloudEvents bool

	// CorrelationID and ReplyTo are set for rpc calls only.
	CorrelationID string
	ReplyTo       string
	// Deadline is the call's absolute deadline (rpc only; zero for events).
	Deadline time.Time
	// Persistent selects delivery mode 2: events are persistent, rpc
	// requests are not.
	Persistent bool

	Traceparent string
	Tracestate  string
	// Metadata holds the allow-listed gRPC metadata or HTTP headers, with
	// lower-case keys; each becomes a figway-md-<key> header.
	Metadata map[string][]string
	// Shadow marks a shadow copy (header figway-shadow: 1).
	Shadow bool
}

// FormatTime renders t as figway's header timestamps are: RFC 3339 in
// UTC with exactly nine fraction digits, always 30 characters
// ("2026-11-26T12:00:01.500400000Z").
//
// Every rpc request carries one (figway-deadline), so it is written by
// hand: time.Time.AppendFormat interprets the layout, and its frames were
// the deepest point of a call's goroutine (docs/performance.md, "Held
// calls and goroutine stacks"). Years outside 0–9999 go through
// AppendFormat.
func FormatTime(t time.Time) string {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return string(t.AppendFormat(nil, TimeLayout))
	}
	h, mi, s := t.Clock()
	var b [30]byte
	digits(b[0:4], y)
	b[4] = '-'
	digits(b[5:7], int(mo))
	b[7] = '-'
	digits(b[8:10], d)
	b[10] = 'T'
	digits(b[11:13], h)
	b[13] = ':'
	digits(b[14:16], mi)
	b[16] = ':'
	digits(b[17:19], s)
	b[19] = '.'
	digits(b[20:29], t.Nanosecond())
	b[29] = 'Z'
	return string(b[:])
}

// digits writes v's last len(b) decimal digits into b, zero-padded.
func digits(b []byte, v int) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
}

// Expiration renders the time a request has left as an AMQP expiration:
// whole milliseconds, rounded up, at least 1.
func Expiration(left time.Duration) string {
	ms := (left + time.Millisecond - 1) / time.Millisecond
	if ms < 1 {
		ms = 1
	}
	return strconv.FormatInt(int64(ms), 10)
}

// Deadline reads the figway-deadline header of a request. ok is false when
// the request carries none (events, or a publisher other than figway).
func Deadline(h map[string]any) (deadline time.Time, ok bool, err error) {
	v, present := h[HeaderDeadline]
	if !present {
		return time.Time{}, false, nil
	}
	s, err := text(v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%s: %v", HeaderDeadline, err)
	}
	// RFC3339Nano parses any number of fraction digits, none included:
	// what figway sends (TimeLayout) and what other publishers may.
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%s: %v", HeaderDeadline, err)
	}
	return t, true, nil
}

// Metadata returns the forwarded metadata of a request: every figway-md-<key>
// header, keyed by <key>. A header may hold a string, bytes or an array of
// them.
func Metadata(h map[string]any) map[string][]string {
	var md map[string][]string
	for k, v := range h {
		key, ok := strings.CutPrefix(k, HeaderMetadataPrefix)
		if !ok || key == "" {
			continue
		}
		if md == nil {
			md = make(map[string][]string)
		}
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				if s, err := text(e); err == nil {
					md[key] = append(md[key], s)
				}
			}
		default:
			if s, err := text(v); err == nil {
				md[key] = append(md[key], s)
			}
		}
	}
	return md
}

// TraceContext returns the W3C trace context headers of a message.
func TraceContext(h map[string]any) (traceparent, tracestate string) {
	traceparent, _ = text(h[HeaderTraceparent])
	tracestate, _ = text(h[HeaderTracestate])
	return traceparent, tracestate
}
