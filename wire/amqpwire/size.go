package amqpwire

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"

	"github.com/figway/figway/wire"
)

// DefaultFrameMax is RabbitMQ's default frame_max, in bytes. [FitsFrame]
// and [FitReply] use it when the negotiated frame_max is 0 (no limit was
// negotiated, which RabbitMQ never does).
const DefaultFrameMax = 131072

// frameOverhead is what a frame adds to its payload: type (1), channel (2),
// size (4) and the frame-end octet (1).
const frameOverhead = 8

// ErrHeaderTooLarge is wrapped by the errors of [FitsFrame]: a message's
// content header (its properties and headers table) would not fit in one
// frame. A content header cannot span frames, and RabbitMQ closes the whole
// connection, with every call in flight on it, when one is larger than the
// negotiated frame_max (docs/wire-protocol.md, "Size of the headers").
var ErrHeaderTooLarge = errors.New("message headers larger than the broker's frame_max")

// HeaderFrameSize returns the size in bytes of the content header frame
// that amqp091-go writes for p, frame envelope included: the number the
// broker compares with frame_max. It fails, as amqp091-go's Publish would
// after writing the method frame, when p cannot be encoded: a short string
// (a property, or a header name) over 255 bytes, or a header value of a
// type AMQP tables cannot hold.
//
// It mirrors amqp091-go's headerFrame.write and writeField (v1.16) byte for
// byte; TestHeaderFrameSizeMatchesBroker checks it against a real broker at
// the exact boundary.
func HeaderFrameSize(p *amqp.Publishing) (int, error) {
	// class id (2), weight (2), body size (8), property flags (2)
	n := frameOverhead + 2 + 2 + 8 + 2
	for _, s := range [...]struct{ name, v string }{
		{"content_type", p.ContentType}, {"content_encoding", p.ContentEncoding},
		{"correlation_id", p.CorrelationId}, {"reply_to", p.ReplyTo},
		{"expiration", p.Expiration}, {"message_id", p.MessageId},
		{"type", p.Type}, {"user_id", p.UserId}, {"app_id", p.AppId},
	} {
		if s.v == "" {
			continue
		}
		if len(s.v) > 255 {
			return 0, fmt.Errorf("property %s: %d bytes, over the 255 of an AMQP short string", s.name, len(s.v))
		}
		n += 1 + len(s.v)
	}
	if len(p.Headers) > 0 {
		t, err := tableSize(p.Headers)
		if err != nil {
			return 0, fmt.Errorf("headers: %w", err)
		}
		n += t
	}
	if p.DeliveryMode > 0 {
		n++
	}
	if p.Priority > 0 {
		n++
	}
	if !p.Timestamp.IsZero() {
		n += 8
	}
	return n, nil
}

// tableSize is the encoded size of a field table: a long-string length and
// each name (short string) with its value.
func tableSize(t amqp.Table) (int, error) {
	n := 4
	for k, v := range t {
		if len(k) > 255 {
			return 0, fmt.Errorf("header name of %d bytes, over the 255 of an AMQP short string", len(k))
		}
		f, err := fieldSize(v)
		if err != nil {
			return 0, fmt.Errorf("header %.64q: %w", k, err)
		}
		n += 1 + len(k) + f
	}
	return n, nil
}

// fieldSize is the encoded size of one table or array value, type octet
// included.
func fieldSize(v any) (int, error) {
	switch v := v.(type) {
	case nil:
		return 1, nil
	case bool, byte, int8:
		return 2, nil
	case int16, uint16:
		return 3, nil
	case int, int32, uint32, float32:
		return 5, nil
	case int64, float64, time.Time:
		return 9, nil
	case amqp.Decimal:
		return 6, nil
	case string:
		return 5 + len(v), nil
	case []byte:
		return 5 + len(v), nil
	case []any:
		n := 5
		for _, e := range v {
			f, err := fieldSize(e)
			if err != nil {
				return 0, err
			}
			n += f
		}
		return n, nil
	case amqp.Table:
		t, err := tableSize(v)
		return 1 + t, err
	}
	return 0, fmt.Errorf("type %T is not an AMQP field type", v)
}

// FitsFrame reports, with an error wrapping [ErrHeaderTooLarge], a message
// whose content header would not fit in a frame of frameMax bytes (the
// connection's negotiated frame_max; 0 means [DefaultFrameMax]), and, as
// [HeaderFrameSize] does, one that cannot be encoded at all. Publishing
// either would close the connection, so neither may be published.
func FitsFrame(p *amqp.Publishing, frameMax int) error {
	if frameMax <= 0 {
		frameMax = DefaultFrameMax
	}
	n, err := HeaderFrameSize(p)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrHeaderTooLarge, err)
	}
	if n > frameMax {
		return fmt.Errorf("%w: %d bytes, frame_max %d", ErrHeaderTooLarge, n, frameMax)
	}
	return nil
}

// truncatedMark ends a figway-message that [FitReply] shortened.
const truncatedMark = "… (truncated by the worker: the reply headers exceeded the broker's frame_max)"

// FitReply makes the reply p fit the broker's frameMax (0 means
// [DefaultFrameMax]) before it is published, counting every header the
// reply carries. It reports whether it changed p. In turn, until p fits:
//   - figway-details is dropped (it is optional);
//   - figway-message is shortened, on a UTF-8 boundary, and marked so;
//   - the reply is replaced by an INTERNAL status with a message that says
//     why, no other header and no body: the headers that did not fit
//     (reply metadata, say) were the worker's, and the caller must not get
//     a silently partial answer.
func FitReply(p *amqp.Publishing, frameMax int) bool {
	if frameMax <= 0 {
		frameMax = DefaultFrameMax
	}
	n, err := HeaderFrameSize(p)
	if err == nil && n <= frameMax {
		return false
	}
	if err == nil {
		if d, ok := p.Headers[wire.HeaderDetails]; ok {
			delete(p.Headers, wire.HeaderDetails)
			f, _ := fieldSize(d)
			n -= 1 + len(wire.HeaderDetails) + f
			if n <= frameMax {
				return true
			}
		}
		if msg, ok := p.Headers[wire.HeaderMessage].(string); ok {
			keep := len(msg) - (n - frameMax) - len(truncatedMark)
			if keep >= 0 {
				for keep > 0 && !utf8.RuneStart(msg[keep]) {
					keep--
				}
				p.Headers[wire.HeaderMessage] = msg[:keep] + truncatedMark
				if FitsFrame(p, frameMax) == nil {
					return true
				}
			}
		}
	}
	why := "the worker's reply headers do not fit the broker's frame_max"
	if err != nil {
		why = "the worker's reply headers cannot be encoded"
	}
	p.Headers = amqp.Table{wire.HeaderStatus: int32(codes.Internal), wire.HeaderMessage: why}
	p.Body = nil
	return true
}
