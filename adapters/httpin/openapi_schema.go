package httpin

import (
	"bytes"
	"encoding/json"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// schema is a JSON Schema (2020-12, OpenAPI 3.1's dialect) of what
// protojson writes and reads.
type schema struct {
	Ref                  string     `json:"$ref,omitempty"`
	Type                 any        `json:"type,omitempty"` // a string, or a list for a union
	Format               string     `json:"format,omitempty"`
	Pattern              string     `json:"pattern,omitempty"`
	ContentEncoding      string     `json:"contentEncoding,omitempty"`
	Title                string     `json:"title,omitempty"`
	Description          string     `json:"description,omitempty"`
	Enum                 []any      `json:"enum,omitempty"`
	Minimum              *int64     `json:"minimum,omitempty"`
	Maximum              *int64     `json:"maximum,omitempty"`
	Items                *schema    `json:"items,omitempty"`
	Properties           properties `json:"properties,omitempty"`
	Required             []string   `json:"required,omitempty"`
	AdditionalProperties any        `json:"additionalProperties,omitempty"` // *schema or false
	AnyOf                []*schema  `json:"anyOf,omitempty"`
	Deprecated           bool       `json:"deprecated,omitempty"`
	// Oneofs names the members of each of the message's oneofs, of which
	// at most one may be set: an extension, as JSON Schema's oneOf would
	// make every property combination a union.
	Oneofs map[string][]string `json:"x-oneofs,omitempty"`
}

// properties keeps a message's fields in their declaration order.
type properties []property

type property struct {
	name string
	s    *schema
}

func (ps properties) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, p := range ps {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(p.name)
		buf.Write(k)
		buf.WriteByte(':')
		v, err := json.Marshal(p.s)
		if err != nil {
			return nil, err
		}
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// schemas builds the components/schemas of a document: one per message
// and enum reached from a binding, named by its full proto name.
type schemas struct {
	protoNames      bool // property names: proto names, or protojson's lowerCamelCase
	emitUnpopulated bool // unset message fields are written as null
	defs            map[string]*schema
}

func ref(name protoreflect.FullName) *schema {
	return &schema{Ref: "#/components/schemas/" + string(name)}
}

func ptrInt(v int64) *int64 { return &v }

// Patterns of the strings protojson writes.
const (
	patternInt64    = `^-?[0-9]+$`
	patternUint64   = `^[0-9]+$`
	patternDuration = `^-?[0-9]+(\.[0-9]{1,9})?s$`
)

// number is a float or double: protojson writes NaN and the infinities as
// strings.
func number(format string) *schema {
	return &schema{AnyOf: []*schema{
		{Type: "number", Format: format},
		{Type: "string", Enum: []any{"NaN", "Infinity", "-Infinity"}},
	}}
}

// wellKnown returns the schema of a google.protobuf type that protojson
// writes in a form of its own, or nil.
func wellKnown(md protoreflect.MessageDescriptor) *schema {
	switch md.FullName() {
	case "google.protobuf.Timestamp":
		return &schema{Type: "string", Format: "date-time", Description: "RFC 3339, UTC, with 0, 3, 6 or 9 fraction digits."}
	case "google.protobuf.Duration":
		return &schema{Type: "string", Pattern: patternDuration, Description: `Seconds with up to 9 fraction digits and an "s": "1.5s".`}
	case "google.protobuf.FieldMask":
		return &schema{Type: "string", Description: "Comma-separated field paths in lowerCamelCase."}
	case "google.protobuf.Struct":
		return &schema{Type: "object"}
	case "google.protobuf.Value":
		return &schema{Description: "Any JSON value."}
	case "google.protobuf.ListValue":
		return &schema{Type: "array"}
	case "google.protobuf.Empty":
		return &schema{Type: "object"}
	case "google.protobuf.Any":
		return anySchema()
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue",
		"google.protobuf.Int64Value", "google.protobuf.UInt64Value",
		"google.protobuf.Int32Value", "google.protobuf.UInt32Value",
		"google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
		return scalar(md.Fields().ByName("value"))
	}
	return nil
}

// anySchema is google.protobuf.Any in JSON.
func anySchema() *schema {
	return &schema{
		Type:        "object",
		Description: `A message of the type that "@type" names, with its fields beside "@type" (or in "value", for a type protojson writes in a form of its own).`,
		Properties:  properties{{"@type", &schema{Type: "string"}}},
		Required:    []string{"@type"},
	}
}

// scalar is the schema of a field's value that is neither a message nor an
// enum.
func scalar(fd protoreflect.FieldDescriptor) *schema {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return &schema{Type: "boolean"}
	case protoreflect.StringKind:
		return &schema{Type: "string"}
	case protoreflect.BytesKind:
		return &schema{Type: "string", Format: "byte", ContentEncoding: "base64"}
	case protoreflect.DoubleKind:
		return number("double")
	case protoreflect.FloatKind:
		return number("float")
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return &schema{Type: "integer", Format: "int32"}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return &schema{Type: "integer", Minimum: ptrInt(0), Maximum: ptrInt(1<<32 - 1)}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return &schema{Type: "string", Format: "int64", Pattern: patternInt64}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return &schema{Type: "string", Format: "uint64", Pattern: patternUint64}
	}
	return &schema{}
}

// value is the schema of one value of fd: a scalar, an enum or a message
// (a reference, registered on first use).
func (ss *schemas) value(fd protoreflect.FieldDescriptor) *schema {
	switch {
	case fd.Enum() != nil:
		if fd.Enum().FullName() == "google.protobuf.NullValue" {
			return &schema{Type: "null"}
		}
		return ss.enum(fd.Enum())
	case fd.Message() != nil:
		return ss.message(fd.Message())
	}
	return scalar(fd)
}

// field is the schema of fd as a property: a list, a map or one value.
func (ss *schemas) field(fd protoreflect.FieldDescriptor) *schema {
	var s *schema
	switch {
	case fd.IsMap():
		s = &schema{Type: "object", AdditionalProperties: ss.value(fd.MapValue())}
		if k := fd.MapKey().Kind(); k != protoreflect.StringKind {
			s.Description = "Keys are " + strings.ToLower(k.String()) + "s, written as strings."
		}
	case fd.IsList():
		s = &schema{Type: "array", Items: ss.value(fd)}
	default:
		s = ss.value(fd)
		if ss.emitUnpopulated && fd.Message() != nil && s.Ref != "" {
			// protojson writes an unset message field as null.
			s = &schema{AnyOf: []*schema{s, {Type: "null"}}}
		}
	}
	if doc := comments(fd); doc != "" {
		if s.Ref != "" { // siblings of $ref are allowed in 3.1, but keep the reference plain
			s = &schema{AnyOf: []*schema{s}}
		}
		s.Description = join(doc, s.Description)
	}
	if deprecated(fd) {
		s.Deprecated = true
	}
	return s
}

// name is the JSON name of a field under the document's settings.
func (ss *schemas) name(fd protoreflect.FieldDescriptor) string {
	if ss.protoNames {
		return string(fd.Name())
	}
	return fd.JSONName()
}

func (ss *schemas) enum(ed protoreflect.EnumDescriptor) *schema {
	name := string(ed.FullName())
	if _, ok := ss.defs[name]; !ok {
		s := &schema{Type: "string", Title: string(ed.Name()), Description: comments(ed)}
		var values []string
		for i := range ed.Values().Len() {
			v := ed.Values().Get(i)
			s.Enum = append(s.Enum, string(v.Name()))
			if doc := comments(v); doc != "" {
				values = append(values, "- "+string(v.Name())+": "+oneLine(doc))
			}
		}
		s.Description = join(s.Description, strings.Join(values, "\n"))
		ss.defs[name] = s
	}
	return ref(ed.FullName())
}

// message returns the schema of a message: inline for a well-known type,
// else a reference to its definition, built on first use (before its
// fields, so that a message may hold itself).
func (ss *schemas) message(md protoreflect.MessageDescriptor) *schema {
	if s := wellKnown(md); s != nil {
		return s
	}
	name := string(md.FullName())
	if _, ok := ss.defs[name]; ok {
		return ref(md.FullName())
	}
	s := &schema{Type: "object", Title: string(md.Name()), Description: comments(md)}
	ss.defs[name] = s
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		s.Properties = append(s.Properties, property{ss.name(fd), ss.field(fd)})
	}
	oneofs := md.Oneofs()
	for i := range oneofs.Len() {
		od := oneofs.Get(i)
		if od.IsSynthetic() {
			continue
		}
		if s.Oneofs == nil {
			s.Oneofs = map[string][]string{}
		}
		var names []string
		for j := range od.Fields().Len() {
			names = append(names, ss.name(od.Fields().Get(j)))
		}
		s.Oneofs[string(od.Name())] = names
		s.Description = join(s.Description, "At most one of "+strings.Join(names, ", ")+" is set.")
	}
	if deprecated(md) {
		s.Deprecated = true
	}
	return ref(md.FullName())
}

// status is google.rpc.Status as figway's REST errors carry it.
func (ss *schemas) status() *schema {
	const name = "google.rpc.Status"
	if _, ok := ss.defs[name]; !ok {
		ss.defs[name] = &schema{
			Type:        "object",
			Title:       "Status",
			Description: "The error: a google.rpc.Status, the same as a gRPC caller gets (docs/errors.md).",
			Properties: properties{
				{"code", &schema{Type: "integer", Format: "int32", Description: "The gRPC status code, a google.rpc.Code value."}},
				{"message", &schema{Type: "string", Description: "A message for the developer, in English."}},
				{"details", &schema{Type: "array", Items: anySchema(), Description: "Error details, such as google.rpc.ErrorInfo or google.rpc.BadRequest."}},
			},
		}
	}
	return ref(name)
}

// comments returns the comments before a declaration in its .proto file,
// when the descriptor set holds source info (buf build keeps it;
// protoc needs --include_source_info).
func comments(d protoreflect.Descriptor) string {
	loc := d.ParentFile().SourceLocations().ByDescriptor(d)
	lines := strings.Split(strings.TrimSpace(loc.LeadingComments), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(strings.TrimRight(l, " \t"), " ")
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// join joins the non-empty ones of a and b with a blank line.
func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "\n\n" + b
}

func deprecated(d protoreflect.Descriptor) bool {
	switch o := d.Options().(type) {
	case *descriptorpb.FieldOptions:
		return o.GetDeprecated()
	case *descriptorpb.MessageOptions:
		return o.GetDeprecated()
	case *descriptorpb.MethodOptions:
		return o.GetDeprecated()
	}
	return false
}
