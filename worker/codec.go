package worker

import (
	"strings"

	"github.com/figway/figway/wire"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// codec is a request's body encoding, read from its content_type. The
// reply uses the same one.
type codec uint8

const (
	protobufCodec codec = iota + 1
	jsonCodec
)

// codecFor returns the codec for an AMQP content_type. Parameters
// ("; charset=utf-8") and case are ignored.
func codecFor(contentType string) (codec, bool) {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	switch {
	case strings.EqualFold(mt, wire.ContentTypeProtobuf), strings.EqualFold(mt, "application/x-protobuf"):
		return protobufCodec, true
	case strings.EqualFold(mt, wire.ContentTypeJSON):
		return jsonCodec, true
	}
	return 0, false
}

// Requests may carry fields a newer client knows and this worker does
// not: ignore them, as proto.Unmarshal does.
var jsonIn = protojson.UnmarshalOptions{DiscardUnknown: true}

func (c codec) unmarshal(b []byte, m proto.Message) error {
	if c == jsonCodec {
		if len(b) == 0 {
			return nil // an empty body is the empty message in both encodings
		}
		return jsonIn.Unmarshal(b, m)
	}
	return proto.Unmarshal(b, m)
}

func (c codec) marshal(m proto.Message) ([]byte, error) {
	if c == jsonCodec {
		return protojson.Marshal(m)
	}
	return proto.Marshal(m)
}
