package httpin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/wire"
)

// render turns a reply body, in the route's content type, into the JSON
// answer: the whole response message, or its response_body field. Its
// errors wrap gateway.ErrBadReply. Required fields (proto2) are the
// service's business: AllowPartial spares the walk that checks them.
func (rt *router) render(b *binding, body []byte, contentType string) ([]byte, error) {
	msg := dynamicpb.NewMessage(b.output)
	var err error
	switch contentType {
	case wire.ContentTypeJSON:
		err = protojson.UnmarshalOptions{Resolver: rt.types, DiscardUnknown: true, AllowPartial: true}.Unmarshal(body, msg)
	case "", wire.ContentTypeProtobuf:
		err = proto.UnmarshalOptions{Resolver: rt.types, AllowPartial: true}.Unmarshal(body, msg)
	default:
		err = fmt.Errorf("content type %q", contentType)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w: decode %s: %v", b.method, gateway.ErrBadReply, b.output.FullName(), err)
	}
	out, err := rt.field(msg, b.respField)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: encode JSON: %v", b.method, gateway.ErrBadReply, err)
	}
	return compact(out), nil
}

// compact removes the space that protojson puts after commas in some
// builds and not others (on purpose, so that nobody depends on its bytes):
// figway's answers are the same bytes whichever build serves them, and can
// match a legacy service's byte for byte.
func compact(b []byte) []byte {
	if !bytes.Contains(b, []byte(", ")) {
		return b
	}
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return b
	}
	return out.Bytes()
}

// field marshals fd of msg, or msg itself when fd is nil. A message field
// is marshaled as a message; any other field (scalar, repeated, map) as the
// value of its key in a message that holds only it, so that it gets
// protojson's encoding of that field kind.
func (rt *router) field(msg *dynamicpb.Message, fd protoreflect.FieldDescriptor) ([]byte, error) {
	if fd == nil {
		return rt.marshaler.Marshal(msg)
	}
	if fd.Message() != nil && !fd.IsList() && !fd.IsMap() {
		return rt.marshaler.Marshal(msg.Get(fd).Message().Interface())
	}
	only := dynamicpb.NewMessage(msg.Descriptor())
	if msg.Has(fd) {
		only.Set(fd, msg.Get(fd))
	}
	opts := rt.marshaler.MarshalOptions
	opts.EmitUnpopulated = true // an empty list is [], not a missing key
	all, err := opts.Marshal(only)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(all, &fields); err != nil {
		return nil, err
	}
	name := fd.JSONName()
	if opts.UseProtoNames {
		name = string(fd.Name())
	}
	return fields[name], nil
}

// fail answers err as grpc-gateway does: a google.rpc.Status in JSON, with
// the HTTP status of [httpStatus].
func (rt *router) fail(w http.ResponseWriter, r *http.Request, err error) {
	st := gateway.Status(err)
	if len(st.Proto().GetDetails()) > 0 || !utf8.ValidString(st.Message()) {
		st = rt.renderable(st)
	}
	runtime.HTTPError(r.Context(), rt.mux, rt.marshaler, w, r,
		&runtime.HTTPStatusError{HTTPStatus: httpStatus(err), Err: st.Err()})
}

// httpStatus maps an error of gateway.Invoke, or of decoding, to HTTP:
// grpc-gateway's table of gRPC codes (runtime.HTTPStatusFromCode), except
// where docs/errors.md is more precise than the code — a request over the
// size limit is 413 (not 429), one whose forwarded headers are over their
// limits 431, a reply that does not decode 502 (not 500).
// It is the one place where the REST ingress picks a status.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, gateway.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, gateway.ErrHeadersTooLarge):
		return http.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, gateway.ErrBadReply):
		return http.StatusBadGateway
	}
	return runtime.HTTPStatusFromCode(gateway.Code(err))
}

// renderable makes st something protojson can marshal, which grpc-gateway
// would otherwise answer with a bare "failed to marshal error message":
// invalid UTF-8 in the message (from a path, or a service) is replaced,
// and details of a type that neither the descriptor set nor figway knows
// are dropped.
func (rt *router) renderable(st *status.Status) *status.Status {
	p := st.Proto()
	p.Message = strings.ToValidUTF8(p.Message, "\uFFFD")
	kept := p.Details[:0:0]
	for _, d := range p.Details {
		if _, err := rt.types.FindMessageByURL(d.GetTypeUrl()); err == nil {
			kept = append(kept, d)
		}
	}
	p.Details = kept
	return status.FromProto(p)
}
