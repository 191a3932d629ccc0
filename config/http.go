package config

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

var verbs = []string{"get", "put", "post", "delete", "patch", "custom"}

// httpRule decodes a route's http key and checks what it can without the
// method's descriptor: one verb, and paths that start with "/".
func (d *decoder) httpRule(v *value, path string) *HTTPRule {
	if v == nil {
		return nil
	}
	f := d.fields(v, path, slices.Concat(verbs, []string{"body", "response_body"})...)
	if v.kind != mapping {
		return nil
	}
	h := &HTTPRule{
		Get:          d.str(f["get"], field(path, "get")),
		Put:          d.str(f["put"], field(path, "put")),
		Post:         d.str(f["post"], field(path, "post")),
		Delete:       d.str(f["delete"], field(path, "delete")),
		Patch:        d.str(f["patch"], field(path, "patch")),
		Body:         d.str(f["body"], field(path, "body")),
		ResponseBody: d.str(f["response_body"], field(path, "response_body")),
	}
	if c := f["custom"]; c != nil {
		cp := field(path, "custom")
		cf := d.fields(c, cp, "kind", "path")
		h.Custom = &CustomPattern{
			Kind: d.str(cf["kind"], field(cp, "kind")),
			Path: d.str(cf["path"], field(cp, "path")),
		}
		if h.Custom.Kind == "" {
			d.p.once(field(cp, "kind"), "required: the HTTP method, such as HEAD")
		} else if !isToken(h.Custom.Kind) {
			d.p.at(field(cp, "kind"), "%q is not an HTTP method name", h.Custom.Kind)
		}
	}
	var set []string
	for _, b := range h.bindings() {
		if b.path == "" && f[b.verb] == nil {
			continue
		}
		set = append(set, b.verb)
		p := field(path, b.verb)
		if b.verb == "custom" {
			p = field(p, "path")
		}
		if !strings.HasPrefix(b.path, "/") {
			d.p.at(p, "path template %q must start with \"/\"", b.path)
		}
	}
	switch len(set) {
	case 0:
		d.p.at(path, "needs one of get, put, post, delete, patch or custom, with the path template")
	case 1:
	default:
		d.p.at(field(path, set[1]), "a rule binds one verb, and this one has %s", allOf(set))
	}
	return h
}

type binding struct{ verb, path string }

func (h *HTTPRule) bindings() []binding {
	b := []binding{{"get", h.Get}, {"put", h.Put}, {"post", h.Post}, {"delete", h.Delete}, {"patch", h.Patch}}
	if h.Custom != nil {
		b = append(b, binding{"custom", h.Custom.Path})
	} else {
		b = append(b, binding{"custom", ""})
	}
	return b
}

// validateHTTPRule checks the fields that a rule names against the method:
// path variables and body against the request message, response_body
// against the response.
func validateHTTPRule(h *HTTPRule, md protoreflect.MethodDescriptor, path string, p *problems) {
	for _, b := range h.bindings() {
		if b.path == "" {
			continue
		}
		vp := field(path, b.verb)
		if b.verb == "custom" {
			vp = field(vp, "path")
		}
		vars, err := templateVars(b.path)
		if err != nil {
			p.at(vp, "path template %q: %v", b.path, err)
			continue
		}
		for _, v := range vars {
			if err := fieldPath(md.Input(), v); err != nil {
				p.at(vp, "path variable {%s}: %v", v, err)
			}
		}
	}
	if h.Body != "" && h.Body != "*" {
		if err := topField(md.Input(), h.Body); err != nil {
			p.at(field(path, "body"), `want "*", a field of the request, or nothing: %v`, err)
		}
	}
	if h.ResponseBody != "" {
		if err := topField(md.Output(), h.ResponseBody); err != nil {
			p.at(field(path, "response_body"), "want a field of the response, or nothing: %v", err)
		}
	}
}

// templateVars returns the field paths of the variables of a path
// template, "/v1/{name=shelves/*}/books/{book_id}" → name, book_id.
func templateVars(tmpl string) ([]string, error) {
	var vars []string
	rest := tmpl
	for {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			return vars, nil
		}
		if rest[open] == '}' {
			return nil, fmt.Errorf(`"}" without "{"`)
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] == '{' {
			return nil, fmt.Errorf(`"{" without "}"`)
		}
		v := rest[open+1 : open+1+end]
		if name, _, ok := strings.Cut(v, "="); ok {
			v = name
		}
		vars = append(vars, v)
		rest = rest[open+1+end+1:]
	}
}

// fieldPath resolves a dotted path of singular fields, "order.id".
func fieldPath(md protoreflect.MessageDescriptor, path string) error {
	names := strings.Split(path, ".")
	for i, name := range names {
		fd, err := findField(md, name)
		if err != nil {
			return err
		}
		if i == len(names)-1 {
			return nil
		}
		if fd.Message() == nil || fd.IsList() || fd.IsMap() {
			return fmt.Errorf("%s is not a singular message field", fd.FullName())
		}
		md = fd.Message()
	}
	return nil
}

func topField(md protoreflect.MessageDescriptor, name string) error {
	_, err := findField(md, name)
	return err
}

func findField(md protoreflect.MessageDescriptor, name string) (protoreflect.FieldDescriptor, error) {
	if fd := md.Fields().ByName(protoreflect.Name(name)); fd != nil {
		return fd, nil
	}
	var names []string
	for i := 0; i < md.Fields().Len(); i++ {
		names = append(names, string(md.Fields().Get(i).Name()))
	}
	msg := fmt.Sprintf("%s has no field %q", md.FullName(), name)
	if s := suggest(name, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return nil, fmt.Errorf("%s", msg)
}
