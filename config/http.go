package config

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/figway/figway/config/yamlfile"
	"github.com/figway/figway/gateway"
)

var verbs = []string{"get", "put", "post", "delete", "patch", "custom"}

// httpRule decodes a route's http key and checks what it can without the
// method's descriptor: one verb, and paths that start with "/".
func (d *decoder) httpRule(v *yamlfile.Value, path string) *HTTPRule {
	if v == nil {
		return nil
	}
	f := d.Fields(v, path, slices.Concat(verbs, []string{"body", "response_body"})...)
	if v.Kind != yamlfile.Mapping {
		return nil
	}
	h := &HTTPRule{
		Body:         d.Str(f["body"], yamlfile.Field(path, "body")),
		ResponseBody: d.Str(f["response_body"], yamlfile.Field(path, "response_body")),
	}
	var set []string
	for _, verb := range verbs {
		if f[verb] == nil {
			continue
		}
		set = append(set, verb)
		kind, tmpl, p := d.verbBinding(f[verb], yamlfile.Field(path, verb), verb)
		if len(set) == 1 {
			h.Verb, h.Path = kind, tmpl
		}
		if !strings.HasPrefix(tmpl, "/") {
			d.P.At(p, "path template %q must start with \"/\"", tmpl)
		}
	}
	switch len(set) {
	case 0:
		d.P.At(path, "needs one of get, put, post, delete, patch or custom, with the path template")
	case 1:
	default:
		d.P.At(yamlfile.Field(path, set[1]), "a rule binds one verb, and this one has %s", yamlfile.AllOf(set))
	}
	return h
}

// verbBinding decodes the value of one verb key of a rule: its HTTP method,
// its path template and the path of the template in the file.
func (d *decoder) verbBinding(v *yamlfile.Value, path, verb string) (kind, tmpl, tmplPath string) {
	if verb != "custom" {
		return strings.ToUpper(verb), d.Str(v, path), path
	}
	cf := d.Fields(v, path, "kind", "path")
	kind = d.Str(cf["kind"], yamlfile.Field(path, "kind"))
	if kind == "" {
		d.P.Once(yamlfile.Field(path, "kind"), "required: the HTTP method, such as HEAD")
	} else if !isToken(kind) {
		d.P.At(yamlfile.Field(path, "kind"), "%q is not an HTTP method name", kind)
	}
	return kind, d.Str(cf["path"], yamlfile.Field(path, "path")), yamlfile.Field(path, "path")
}

// rulePath is the path in the file of h's path template, under path (the
// route's http key).
func rulePath(h *HTTPRule, path string) string {
	if verb := strings.ToLower(h.Verb); verb != "custom" && slices.Contains(verbs, verb) {
		return yamlfile.Field(path, verb)
	}
	return yamlfile.Field(yamlfile.Field(path, "custom"), "path")
}

// validateHTTPRule checks the fields that a rule names against the method:
// path variables and body against the request message, response_body
// against the response.
func validateHTTPRule(h *HTTPRule, md protoreflect.MethodDescriptor, path string, p *yamlfile.Problems) {
	if h.Path != "" {
		vp := rulePath(h, path)
		if vars, err := gateway.PathVars(h.Path); err != nil {
			p.At(vp, "path template %q: %v", h.Path, err)
		} else {
			for _, v := range vars {
				if err := fieldPath(md.Input(), v); err != nil {
					p.At(vp, "path variable {%s}: %v", v, err)
				}
			}
		}
	}
	if h.Body != "" && h.Body != "*" {
		if err := topField(md.Input(), h.Body); err != nil {
			p.At(yamlfile.Field(path, "body"), `want "*", a field of the request, or nothing: %v`, err)
		}
	}
	if h.ResponseBody != "" {
		if err := topField(md.Output(), h.ResponseBody); err != nil {
			p.At(yamlfile.Field(path, "response_body"), "want a field of the response, or nothing: %v", err)
		}
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
	if s := yamlfile.Suggest(name, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return nil, fmt.Errorf("%s", msg)
}
