// Package grpcframe lets figway move gRPC messages without decoding them: a
// [Frame] holds a message's bytes as they came off the wire, and [Codec]
// passes frames through untouched while handing every other message (the
// health and reflection services') to grpc-go's proto codec.
package grpcframe

import (
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// Frame is one gRPC message, undecoded.
type Frame []byte

// Codec is a grpc-go CodecV2 for frames. It keeps the name "proto" so that
// peers see the content-subtype they expect.
type Codec struct{ proto encoding.CodecV2 }

// NewCodec returns a Codec.
func NewCodec() Codec { return Codec{proto: encoding.GetCodecV2(protoenc.Name)} }

// Marshal returns a frame's bytes as they are, or a proto message encoded.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*Frame); ok {
		return mem.BufferSlice{mem.SliceBuffer(*f)}, nil
	}
	return c.proto.Marshal(v)
}

// Unmarshal copies the message's bytes into a frame, or decodes a proto
// message.
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*Frame); ok {
		*f = data.Materialize()
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

// Name is "proto".
func (Codec) Name() string { return protoenc.Name }
