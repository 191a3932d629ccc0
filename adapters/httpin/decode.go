package httpin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/figway/figway/gateway"
)

// decoder turns the body, path variables and query of a request into the
// request message, with the route table's types.
type decoder struct {
	json    protojson.UnmarshalOptions
	strict  bool // refuse query parameters that name no field
	maxBody int64
}

// decode builds the request message of b. Body first, then the path
// variables over it, then the query parameters for the fields neither
// sets — the order of grpc-gateway's generated handlers. It returns the
// body it read, if any. Its errors wrap gateway.ErrBadRequest or
// gateway.ErrTooLarge.
func (d *decoder) decode(b *binding, r *http.Request, params map[string]string) (msg *dynamicpb.Message, body []byte, err error) {
	msg = dynamicpb.NewMessage(b.input)
	if b.wholeBody || b.bodyField != nil {
		if body, err = readBody(r, d.maxBody); err != nil {
			return nil, nil, err
		}
		if err := d.body(msg, b, body); err != nil {
			return nil, nil, fmt.Errorf("%w: body: %v", gateway.ErrBadRequest, err)
		}
	}
	for _, v := range b.vars {
		val, ok := params[v.path]
		if !ok {
			continue
		}
		if err := setField(msg, v.fields, []string{val}); err != nil {
			return nil, nil, fmt.Errorf("%w: path parameter %q: %v", gateway.ErrBadRequest, v.path, err)
		}
	}
	if r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: query: %v", gateway.ErrBadRequest, err)
		}
		if err := d.query(msg, b, q); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", gateway.ErrBadRequest, err)
		}
	}
	return msg, body, nil
}

// readBody reads the whole body, and no more than limit bytes of it: a
// declared Content-Length over the limit is refused before reading.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: body of %d bytes, over the limit of %d", gateway.ErrTooLarge, r.ContentLength, limit)
	}
	size := int64(512)
	if r.ContentLength >= 0 {
		size = r.ContentLength + 1 // +1: ReadFrom needs room to see EOF
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading body: %v", gateway.ErrBadRequest, err)
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("%w: body over the limit of %d bytes", gateway.ErrTooLarge, limit)
	}
	return buf.Bytes(), nil
}

// body decodes a JSON body into msg: the whole message for body "*", one
// field for body "field". An empty body sets nothing.
func (d *decoder) body(msg *dynamicpb.Message, b *binding, body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if b.wholeBody {
		return d.json.Unmarshal(body, msg)
	}
	fd := b.bodyField
	if fd.Message() != nil && !fd.IsList() && !fd.IsMap() {
		return d.json.Unmarshal(body, msg.Mutable(fd).Message().Interface())
	}
	// A scalar, repeated or map field: decode {"<json name>": <body>}, once
	// the body is known to be one JSON value and nothing else — otherwise
	// `1, "other": 2` would set a second field.
	if !json.Valid(body) {
		return errors.New("not a JSON value")
	}
	name := fd.JSONName()
	wrapped := make([]byte, 0, len(body)+len(name)+5)
	wrapped = append(wrapped, `{"`...)
	wrapped = append(wrapped, name...)
	wrapped = append(wrapped, `":`...)
	wrapped = append(wrapped, body...)
	wrapped = append(wrapped, '}')
	return d.json.Unmarshal(wrapped, msg)
}

// query sets the fields that the query names and neither the path nor the
// body set. Enum fields are set here, by value name or number; every other
// key goes to grpc-gateway's query parser, which finds enum types only in
// the registry of compiled-in Go types, where a run-time descriptor set's
// enums are not.
func (d *decoder) query(msg *dynamicpb.Message, b *binding, q url.Values) error {
	rest := q
	for key, vals := range q {
		name, mapKey, isMap := strings.Cut(key, "[")
		fds, err := resolve(b.input, strings.Split(name, "."))
		if err != nil {
			if d.strict {
				return fmt.Errorf("query parameter %q: %v", key, err)
			}
			continue
		}
		leaf := fds[len(fds)-1]
		if b.isBound(dotted(fds)) || !isEnum(leaf) {
			continue
		}
		if isMap {
			mk, ok := strings.CutSuffix(mapKey, "]")
			if !ok || !leaf.IsMap() {
				return fmt.Errorf("query parameter %q: not a map field or key", key)
			}
			vals = append([]string{mk}, vals...)
		}
		if err := setField(msg, fds, vals); err != nil {
			return fmt.Errorf("query parameter %q: %v", key, err)
		}
		if len(rest) == len(q) { // copy on first write: q is the caller's
			rest = make(url.Values, len(q))
			for k, v := range q {
				rest[k] = v
			}
		}
		delete(rest, key)
	}
	if len(rest) == 0 {
		return nil
	}
	if err := runtime.PopulateQueryParameters(msg, rest, b.filter); err != nil {
		return fmt.Errorf("query: %v", err)
	}
	return nil
}

func isEnum(fd protoreflect.FieldDescriptor) bool {
	if fd.IsMap() {
		return fd.MapValue().Enum() != nil
	}
	return fd.Enum() != nil
}

// setField sets the field at the end of fds from text values: one for a
// singular field, any number for a repeated one, key and value for a map.
// Enum values are set here; everything else by grpc-gateway's parser, one
// field at a time.
func setField(msg protoreflect.Message, fds []protoreflect.FieldDescriptor, vals []string) error {
	leaf := fds[len(fds)-1]
	if !isEnum(leaf) {
		return runtime.PopulateFieldFromPath(msg.Interface(), dotted(fds), vals[0])
	}
	for _, fd := range fds[:len(fds)-1] {
		msg = msg.Mutable(fd).Message()
	}
	if of := leaf.ContainingOneof(); of != nil && !of.IsSynthetic() {
		if set := msg.WhichOneof(of); set != nil && set != leaf {
			return fmt.Errorf("oneof %s already set by %s", of.Name(), set.Name())
		}
	}
	switch {
	case leaf.IsList():
		list := msg.Mutable(leaf).List()
		for _, v := range vals {
			n, err := enumValue(leaf.Enum(), v)
			if err != nil {
				return err
			}
			list.Append(protoreflect.ValueOfEnum(n))
		}
	case leaf.IsMap():
		if len(vals) != 2 {
			return fmt.Errorf("want one value for map key %q", vals[0])
		}
		k, err := mapKey(leaf.MapKey(), vals[0])
		if err != nil {
			return err
		}
		n, err := enumValue(leaf.MapValue().Enum(), vals[1])
		if err != nil {
			return err
		}
		msg.Mutable(leaf).Map().Set(k, protoreflect.ValueOfEnum(n))
	default:
		if len(vals) != 1 {
			return fmt.Errorf("want one value, got %d", len(vals))
		}
		n, err := enumValue(leaf.Enum(), vals[0])
		if err != nil {
			return err
		}
		msg.Set(leaf, protoreflect.ValueOfEnum(n))
	}
	return nil
}

// enumValue accepts a value's name or its number, as grpc-gateway does.
func enumValue(ed protoreflect.EnumDescriptor, s string) (protoreflect.EnumNumber, error) {
	if v := ed.Values().ByName(protoreflect.Name(s)); v != nil {
		return v.Number(), nil
	}
	if i, err := strconv.ParseInt(s, 10, 32); err == nil {
		if v := ed.Values().ByNumber(protoreflect.EnumNumber(i)); v != nil {
			return v.Number(), nil
		}
	}
	return 0, fmt.Errorf("%q is not a value of %s", s, ed.FullName())
}

// mapKey parses a map key of any key kind.
func mapKey(fd protoreflect.FieldDescriptor, s string) (protoreflect.MapKey, error) {
	var v any
	var err error
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(s).MapKey(), nil
	case protoreflect.BoolKind:
		v, err = strconv.ParseBool(s)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		var n int64
		n, err = strconv.ParseInt(s, 10, 32)
		v = int32(n)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		v, err = strconv.ParseInt(s, 10, 64)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		var n uint64
		n, err = strconv.ParseUint(s, 10, 32)
		v = uint32(n)
	default:
		v, err = strconv.ParseUint(s, 10, 64)
	}
	if err != nil {
		return protoreflect.MapKey{}, fmt.Errorf("map key %q: %v", s, err)
	}
	return protoreflect.ValueOf(v).MapKey(), nil
}
