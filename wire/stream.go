package wire

import (
	"errors"
	"fmt"
	"strings"
)

// Headers of the replies of a server-streaming call (docs/wire-protocol.md,
// "Streaming replies").
const (
	// HeaderSeq numbers the messages of a stream, 0, 1, …, an integer
	// typed as figway-status is. The end carries the next number.
	HeaderSeq = "figway-seq"
	// HeaderEnd marks the stream's last message: boolean true, or the
	// string "true". The end's body is ignored; its status headers are the
	// stream's status.
	HeaderEnd = "figway-end"
)

// ErrBadStreamPart is wrapped by the errors of [StreamPart].
var ErrBadStreamPart = errors.New("bad stream reply")

// StreamPart reads where a reply of a stream belongs: its sequence number
// and whether it is the end. A reply without figway-seq, with a negative
// one, or with a figway-end that is neither true nor false is an error
// wrapping ErrBadStreamPart.
func StreamPart(h map[string]any) (seq int64, end bool, err error) {
	raw, ok := h[HeaderSeq]
	if !ok {
		return 0, false, fmt.Errorf("%w: no %s header", ErrBadStreamPart, HeaderSeq)
	}
	seq, err = integer(raw)
	if err != nil || seq < 0 {
		return 0, false, fmt.Errorf("%w: %s %v: want an integer from 0", ErrBadStreamPart, HeaderSeq, raw)
	}
	switch v := h[HeaderEnd].(type) {
	case nil:
	case bool:
		end = v
	case string, []byte:
		s, _ := text(v)
		switch strings.ToLower(s) {
		case "true":
			end = true
		case "false", "":
		default:
			return 0, false, fmt.Errorf("%w: %s %q: want true", ErrBadStreamPart, HeaderEnd, s)
		}
	default:
		return 0, false, fmt.Errorf("%w: %s of type %T: want a boolean", ErrBadStreamPart, HeaderEnd, v)
	}
	return seq, end, nil
}

// SetStreamPart writes the sequence number of a stream's reply, and marks
// the end. It returns h, allocating it when nil.
func SetStreamPart(h map[string]any, seq int64, end bool) map[string]any {
	if h == nil {
		h = map[string]any{}
	}
	h[HeaderSeq] = seq
	if end {
		h[HeaderEnd] = true
	}
	return h
}
