package gateway

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// wireSamples are valid encodings of messages with most of what protobuf
// has: nested and recursive messages, maps, oneofs, repeated and packed
// fields, enums, proto2 and proto3 strings.
func wireSamples(t testing.TB) map[string]struct {
	md protoreflect.MessageDescriptor
	b  []byte
} {
	fd := protodesc.ToFileDescriptorProto(descriptorpb.File_google_protobuf_descriptor_proto)
	fd.SourceCodeInfo = &descriptorpb.SourceCodeInfo{Location: []*descriptorpb.SourceCodeInfo_Location{
		{Path: []int32{4, 0, 2, 1}, Span: []int32{10, 2, 40}, LeadingComments: proto.String("é")},
	}}
	st, err := structpb.NewStruct(map[string]any{
		"id": "o-1", "n": 3.5, "ok": true, "none": nil,
		"items": []any{"a", map[string]any{"deep": []any{1.0, "ü"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]struct {
		md protoreflect.MessageDescriptor
		b  []byte
	}{}
	for name, m := range map[string]proto.Message{"FileDescriptorProto": fd, "Struct": st} {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = struct {
			md protoreflect.MessageDescriptor
			b  []byte
		}{m.ProtoReflect().Descriptor(), b}
	}
	return out
}

// unmarshalErr is what the REST ingress does with a reply: a full decode.
// A panic of proto.Unmarshal is an error.
func unmarshalErr(b []byte, md protoreflect.MessageDescriptor) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("proto.Unmarshal panicked: %v", r)
		}
	}()
	return proto.UnmarshalOptions{AllowPartial: true}.Unmarshal(b, dynamicpb.NewMessage(md))
}

// checkWire accepts exactly what proto.Unmarshal accepts: the valid
// samples, and thousands of corruptions of them.
func TestCheckWireAgreesWithUnmarshal(t *testing.T) {
	const corruptions = 2000
	rng := rand.New(rand.NewPCG(16, 5))
	for name, s := range wireSamples(t) {
		if err := checkWire(s.b, s.md); err != nil {
			t.Fatalf("checkWire(valid %s) = %v; want nil", name, err)
		}
		rejected := 0
		for i := range corruptions {
			b := append([]byte(nil), s.b...)
			switch i % 4 {
			case 0: // a byte changed
				b[rng.IntN(len(b))] = byte(rng.IntN(256))
			case 1: // cut short
				b = b[:rng.IntN(len(b))]
			case 2: // a byte inserted
				j := rng.IntN(len(b))
				b = append(b[:j], append([]byte{byte(rng.IntN(256))}, b[j:]...)...)
			case 3: // random bytes after a valid field
				b = append(b[:rng.IntN(len(b))], byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256)))
			}
			want := unmarshalErr(b, s.md)
			got := checkWire(b, s.md)
			if (got == nil) != (want == nil) {
				t.Fatalf("%s, corruption %d (%x): checkWire = %v, proto.Unmarshal = %v; want both to accept or both to refuse", name, i, b, got, want)
			}
			if got != nil {
				rejected++
			}
		}
		t.Logf("%s: %d of %d corruptions refused by both", name, rejected, corruptions)
		if rejected == 0 {
			t.Errorf("%s: no corruption refused; the test proves nothing", name)
		}
	}
}

func TestCheckWire(t *testing.T) {
	st := (&structpb.Value{}).ProtoReflect().Descriptor()
	fdp := (&descriptorpb.FieldDescriptorProto{}).ProtoReflect().Descriptor()
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		md   protoreflect.MessageDescriptor
		b    []byte
		ok   bool
	}{
		{"empty", st, nil, true},
		{"text where a message is", st, []byte("<html>502 Bad Gateway</html>"), false},
		{"JSON where protobuf is", st, []byte(`{"string_value":"x"}`), false},
		{"proto3 string not UTF-8", st, cat(tag(3, protowire.BytesType), protowire.AppendBytes(nil, []byte{0xff})), false},
		{"proto2 string not UTF-8", fdp, cat(tag(1, protowire.BytesType), protowire.AppendBytes(nil, []byte{0xff})), true},
		{"known field, other wire type: unknown", st, cat(tag(3, protowire.VarintType), protowire.AppendVarint(nil, 7)), true},
		{"unknown field", st, cat(tag(99, protowire.Fixed64Type), protowire.AppendFixed64(nil, 1)), true},
		{"field number 0", st, cat(tag(0, protowire.VarintType), []byte{1}), false},
		{"length past the end", st, cat(tag(3, protowire.BytesType), []byte{10, 'a'}), false},
		{"stray end group", st, tag(5, protowire.EndGroupType), false},
		{"nested message broken", st, cat(tag(5, protowire.BytesType), protowire.AppendBytes(nil, []byte{0x0a, 0x05, 'k'})), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkWire(tc.b, tc.md)
			if (err == nil) != tc.ok {
				t.Errorf("checkWire(%x) = %v; want ok %v", tc.b, err, tc.ok)
			}
			if want := unmarshalErr(tc.b, tc.md); (want == nil) != tc.ok {
				t.Errorf("proto.Unmarshal(%x) = %v; the case is wrong", tc.b, want)
			}
		})
	}

	// The depth bound, at a depth cheaper to build than proto.Unmarshal's
	// 10,000: a Value in a ListValue in a Value...
	deep := []byte{}
	for range 5 {
		deep = cat(tag(6, protowire.BytesType), protowire.AppendBytes(nil, cat(tag(1, protowire.BytesType), protowire.AppendBytes(nil, deep))))
	}
	if err := checkMessage(deep, st, 11); err != nil {
		t.Errorf("checkMessage(11 deep, limit 11) = %v; want nil", err)
	}
	if err := checkMessage(deep, st, 10); !errors.Is(err, errTooDeep) {
		t.Errorf("checkMessage(11 deep, limit 10) = %v; want %v", err, errTooDeep)
	}
}

// BenchmarkCheckWire compares checkWire with the full decode it replaces on
// the gRPC path; see docs/performance.md.
func BenchmarkCheckWire(b *testing.B) {
	for name, s := range wireSamples(b) {
		b.Run(name+"/check", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(s.b)))
			for b.Loop() {
				if err := checkWire(s.b, s.md); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/unmarshal", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(s.b)))
			for b.Loop() {
				if err := unmarshalErr(s.b, s.md); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
