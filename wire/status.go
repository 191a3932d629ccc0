package wire

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ErrBadStatus is wrapped by the errors of [ReplyStatus] when a reply's
// status headers cannot be decoded.
var ErrBadStatus = errors.New("bad reply status")

// maxCode is the largest code gRPC defines (UNAUTHENTICATED).
const maxCode = int64(codes.Unauthenticated)

// ReplyStatus decodes the status of a reply from its headers. A reply with no
// figway-status header, or with 0, is OK. The code may be any AMQP integer
// type (workers in other languages pick different widths) or a decimal
// string; the message a string or bytes; the details a serialized
// google.rpc.Status, whose code and message are overridden by the headers.
func ReplyStatus(h map[string]any) (*status.Status, error) {
	raw, ok := h[HeaderStatus]
	if !ok {
		return nil, nil
	}
	code, err := statusCode(raw)
	if err != nil {
		return nil, err
	}
	if code == 0 {
		return nil, nil
	}
	msg, err := text(h[HeaderMessage])
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadStatus, HeaderMessage, err)
	}
	p := &spb.Status{}
	if d, ok := h[HeaderDetails]; ok {
		b, err := bytesOf(d)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadStatus, HeaderDetails, err)
		}
		if err := proto.Unmarshal(b, p); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadStatus, HeaderDetails, err)
		}
	}
	p.Code, p.Message = int32(code), msg
	return status.FromProto(p), nil
}

func statusCode(v any) (int64, error) {
	n, err := integer(v)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %v", ErrBadStatus, HeaderStatus, err)
	}
	if n < 0 || n > maxCode {
		return 0, fmt.Errorf("%w: %s %d is not a gRPC code (0-%d)", ErrBadStatus, HeaderStatus, n, maxCode)
	}
	return n, nil
}

// integer reads an integer header: any AMQP integer type (workers in other
// languages pick different widths), an integral double, or a decimal
// string.
func integer(v any) (int64, error) {
	var n int64
	switch v := v.(type) {
	case int8:
		n = int64(v)
	case int16:
		n = int64(v)
	case int32:
		n = int64(v)
	case int64:
		n = v
	case int:
		n = int64(v)
	case uint8:
		n = int64(v)
	case uint16:
		n = int64(v)
	case uint32:
		n = int64(v)
	case uint64:
		if v > math.MaxInt64 {
			return 0, fmt.Errorf("%d out of range", v)
		}
		n = int64(v)
	case float64:
		if v != math.Trunc(v) {
			return 0, fmt.Errorf("%v is not an integer", v)
		}
		n = int64(v)
	case float32:
		if float64(v) != math.Trunc(float64(v)) {
			return 0, fmt.Errorf("%v is not an integer", v)
		}
		n = int64(v)
	case string:
		p, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", v)
		}
		n = p
	case []byte:
		return integer(string(v))
	default:
		return 0, fmt.Errorf("has type %T, want an integer", v)
	}
	return n, nil
}

func text(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	}
	return "", fmt.Errorf("type %T, want a string", v)
}

func bytesOf(v any) ([]byte, error) {
	switch v := v.(type) {
	case []byte:
		return v, nil
	case string:
		return []byte(v), nil
	}
	return nil, fmt.Errorf("type %T, want bytes", v)
}

// SetStatus writes st into the headers of a reply: nothing for OK, otherwise
// figway-status, figway-message and, when st has details, figway-details.
// It returns h, allocating it when nil and needed.
func SetStatus(h map[string]any, st *status.Status) map[string]any {
	if st == nil || st.Code() == codes.OK {
		return h
	}
	if h == nil {
		h = map[string]any{}
	}
	h[HeaderStatus] = int32(st.Code())
	h[HeaderMessage] = st.Message()
	if p := st.Proto(); len(p.GetDetails()) > 0 {
		if b, err := proto.Marshal(p); err == nil {
			h[HeaderDetails] = b
		}
	}
	return h
}

// PoisonRefusal starts the figway-message of a worker's INTERNAL reply to
// a request it refused to run because it had been delivered too many
// times (docs/wire-protocol.md, "Poison requests").
const PoisonRefusal = "poison request"

// IsPoisonRefusal reports whether msg, the message of an INTERNAL reply,
// is a worker refusing a poison request.
func IsPoisonRefusal(msg string) bool { return strings.HasPrefix(msg, PoisonRefusal) }
