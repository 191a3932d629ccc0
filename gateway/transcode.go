package gateway

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/figway/figway/wire"
)

// transcode re-encodes body from one content type to another as a message
// of type md. The protobuf path never gets here with from == to: bytes go to
// the broker as they came. An empty content type on a reply means protobuf.
func transcode(body []byte, from, to string, md protoreflect.MessageDescriptor, types *dynamicpb.Types) ([]byte, error) {
	if from == "" {
		from = wire.ContentTypeProtobuf
	}
	if to == "" {
		to = wire.ContentTypeProtobuf
	}
	if from == to {
		return body, nil
	}
	m := dynamicpb.NewMessage(md)
	switch from {
	case wire.ContentTypeProtobuf:
		if err := (proto.UnmarshalOptions{Resolver: types}).Unmarshal(body, m); err != nil {
			return nil, fmt.Errorf("decode %s: %v", md.FullName(), err)
		}
	case wire.ContentTypeJSON:
		if err := (protojson.UnmarshalOptions{Resolver: types}).Unmarshal(body, m); err != nil {
			return nil, fmt.Errorf("decode %s: %v", md.FullName(), err)
		}
	default:
		return nil, fmt.Errorf("unsupported content type %q", from)
	}
	switch to {
	case wire.ContentTypeProtobuf:
		return proto.Marshal(m)
	case wire.ContentTypeJSON:
		return protojson.MarshalOptions{Resolver: types}.Marshal(m)
	}
	return nil, fmt.Errorf("unsupported content type %q", to)
}

// replyBody returns the body of a worker's reply to r in the content type
// to. Protobuf bytes that are not a message of r's output type fail, even
// where they would pass through as they came: a gRPC caller must not get
// them as an OK answer (docs/errors.md).
func replyBody(rep *Reply, to string, r *Route) ([]byte, error) {
	if rep.ContentType == "" || rep.ContentType == wire.ContentTypeProtobuf {
		if err := checkWire(rep.Body, r.Output); err != nil {
			return nil, fmt.Errorf("decode %s: %v", r.Output.FullName(), err)
		}
	}
	return transcode(rep.Body, rep.ContentType, to, r.Output, r.types)
}
