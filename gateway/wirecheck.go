package gateway

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// maxMessageDepth is how deeply checkWire follows nested messages: the
// recursion limit of proto.Unmarshal's default options.
const maxMessageDepth = 10000

// checkWire reports whether b is a protobuf encoding of a message of type
// md that proto.Unmarshal would accept, without building the message: a
// protobuf reply passes to a gRPC caller as the bytes it came in, and
// bytes that are not a message of the method's output type must fail the
// call (INTERNAL), as they do over REST, which decodes them
// (docs/errors.md). It walks the encoding once, checking each field's tag
// and length, the contents of every known message-typed field, and the
// UTF-8 of strings where the file's syntax requires it. As proto.Unmarshal
// does, it takes a known field with another wire type, or an unknown
// field, as an unknown field, which must only be well-formed. Required
// fields (proto2) are the service's business, as over REST.
func checkWire(b []byte, md protoreflect.MessageDescriptor) error {
	return checkMessage(b, md, maxMessageDepth)
}

var errTooDeep = errors.New("messages nested too deeply")

// mapKey is the field number of the key in a map entry.
const mapKey = 1

func checkMessage(b []byte, md protoreflect.MessageDescriptor, depth int) error {
	if depth == 0 {
		return errTooDeep
	}
	fields := md.Fields()
	haveKey := false // of a map entry
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%s: %w", md.FullName(), protowire.ParseError(n))
		}
		if num > protowire.MaxValidNumber {
			return fmt.Errorf("%s: field number %d out of range", md.FullName(), num)
		}
		b = b[n:]
		fd := fields.ByNumber(num)
		if fd != nil {
			n, err := checkField(b, fd, typ, depth)
			if err != nil {
				return fmt.Errorf("%s: %w", fd.FullName(), err)
			}
			if n > 0 {
				if fd.Number() == mapKey && md.IsMapEntry() {
					haveKey = true
				}
				b = b[n:]
				continue
			}
			if fd.Number() == mapKey && md.IsMapEntry() && haveKey {
				// proto.Unmarshal (v1.36) panics on this one instead
				// of taking it as an unknown field.
				return fmt.Errorf("%s: a second map key, of the wrong wire type", md.FullName())
			}
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return fmt.Errorf("%s: field %d: %w", md.FullName(), num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// checkField checks the value of fd at the start of b, sent with wire type
// typ, and returns its length, or 0 when typ is not fd's: the value is then
// an unknown field.
func checkField(b []byte, fd protoreflect.FieldDescriptor, typ protowire.Type, depth int) (int, error) {
	want := wireType(fd.Kind())
	if typ != want {
		if typ == protowire.BytesType && fd.IsList() && want != protowire.BytesType && want != protowire.StartGroupType {
			return checkPacked(b, want)
		}
		return 0, nil
	}
	switch fd.Kind() {
	case protoreflect.MessageKind:
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		return n, checkMessage(v, fd.Message(), depth-1)
	case protoreflect.GroupKind:
		v, n := protowire.ConsumeGroup(fd.Number(), b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		return n, checkMessage(v, fd.Message(), depth-1)
	case protoreflect.StringKind:
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		if enforceUTF8(fd) && !utf8.Valid(v) {
			return 0, errors.New("string field contains invalid UTF-8")
		}
		return n, nil
	}
	n := protowire.ConsumeFieldValue(fd.Number(), typ, b)
	if n < 0 {
		return 0, protowire.ParseError(n)
	}
	return n, nil
}

// checkPacked checks a packed repeated field of scalars of wire type elem.
func checkPacked(b []byte, elem protowire.Type) (int, error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return 0, protowire.ParseError(n)
	}
	for len(v) > 0 {
		var m int
		switch elem {
		case protowire.VarintType:
			_, m = protowire.ConsumeVarint(v)
		case protowire.Fixed32Type:
			_, m = protowire.ConsumeFixed32(v)
		case protowire.Fixed64Type:
			_, m = protowire.ConsumeFixed64(v)
		}
		if m < 0 {
			return 0, protowire.ParseError(m)
		}
		v = v[m:]
	}
	return n, nil
}

// wireType is the wire type a field of kind k is encoded with, unpacked.
func wireType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.BoolKind, protoreflect.EnumKind,
		protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Uint32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
		return protowire.VarintType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	}
	return protowire.BytesType // string, bytes, message
}

// enforceUTF8 reports whether proto.Unmarshal checks the UTF-8 of the
// string field fd: in proto3 files, and in editions files unless the
// field's features turn it off (which protoreflect does not show; such
// files are rare, and checking them more strictly fails only bytes that
// are not text).
func enforceUTF8(fd protoreflect.FieldDescriptor) bool {
	return fd.ParentFile().Syntax() != protoreflect.Proto2
}
