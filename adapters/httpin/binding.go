package httpin

import (
	"fmt"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/figway/figway/gateway"
)

// binding is one google.api.http rule of a routed method, resolved against
// the method's descriptors once, when the route table is built: every
// request on its path only looks things up here.
type binding struct {
	method   string // full method name, "pkg.Service/Method"
	route    *gateway.Route
	verb     string // HTTP method
	template string // path template, "/v1/{name=shelves/*}"
	input    protoreflect.MessageDescriptor
	output   protoreflect.MessageDescriptor

	// wholeBody: body "*". bodyField: body "field". Neither: no body.
	wholeBody bool
	bodyField protoreflect.FieldDescriptor
	// respField is the response_body field, or nil for the whole response.
	respField protoreflect.FieldDescriptor

	vars  []pathVar
	bound []string // dotted field paths that the path or the body set
	// filter holds bound for runtime.PopulateQueryParameters, which skips
	// the query parameters that would overwrite them.
	filter *utilities.DoubleArray
	// contentType is the route's encoding on the wire.
	contentType string
	// mayGoLegacy: the gateway may send the call to the legacy service
	// (canary, fallback, shadow, pin), which gets the caller's metadata.
	mayGoLegacy bool
	// passthrough: the gateway does not serve the route (a shadow route
	// without a legacy gRPC upstream): its calls go to the REST
	// passthrough, as if never bound.
	passthrough bool
	// ownHeaders are the reply metadata keys answered under their own
	// name (the route's response_headers).
	ownHeaders map[string]bool
}

// pathVar is a variable of the path template, "{order.id}".
type pathVar struct {
	path   string // as in the template, and as grpc-gateway's mux names it
	fields []protoreflect.FieldDescriptor
}

// rule is the part of a google.api.HttpRule that a binding needs, from the
// descriptors or from a route's http override.
type rule struct {
	verb, path, body, responseBody string
}

// rulesOf returns the HTTP rules of a route: its routes-file override if it
// has one (which replaces the descriptor's rule and its additional
// bindings), else the method's google.api.http option and its
// additional_bindings.
func rulesOf(r *gateway.Route, md protoreflect.MethodDescriptor) []rule {
	if r.HTTP != nil {
		h := r.HTTP
		return []rule{{verb: h.Verb, path: h.Path, body: h.Body, responseBody: h.ResponseBody}}
	}
	opts := md.Options()
	if opts == nil || !proto.HasExtension(opts, annotations.E_Http) {
		return nil
	}
	hr, _ := proto.GetExtension(opts, annotations.E_Http).(*annotations.HttpRule)
	rules := []rule{fromAnnotation(hr)}
	for _, ab := range hr.GetAdditionalBindings() {
		rules = append(rules, fromAnnotation(ab)) // nested additional_bindings are ignored, as protoc-gen-grpc-gateway does
	}
	return rules
}

func fromAnnotation(h *annotations.HttpRule) rule {
	r := rule{body: h.GetBody(), responseBody: h.GetResponseBody()}
	switch p := h.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		r.verb, r.path = "GET", p.Get
	case *annotations.HttpRule_Put:
		r.verb, r.path = "PUT", p.Put
	case *annotations.HttpRule_Post:
		r.verb, r.path = "POST", p.Post
	case *annotations.HttpRule_Delete:
		r.verb, r.path = "DELETE", p.Delete
	case *annotations.HttpRule_Patch:
		r.verb, r.path = "PATCH", p.Patch
	case *annotations.HttpRule_Custom:
		r.verb, r.path = p.Custom.GetKind(), p.Custom.GetPath()
	}
	return r
}

// newBinding resolves rule r of route rt, which gw serves or not, against
// the method's messages.
func newBinding(gw *gateway.Gateway, rt *gateway.Route, r rule) (*binding, error) {
	if r.verb == "" || r.path == "" {
		return nil, fmt.Errorf("google.api.http rule without a verb and a path")
	}
	b := &binding{
		method: rt.Method, route: rt, verb: strings.ToUpper(r.verb), template: r.path,
		input: rt.Input, output: rt.Output, contentType: rt.ContentType(),
		mayGoLegacy: rt.MayGoLegacy(), passthrough: gw != nil && !gw.Serves(rt),
	}
	for _, k := range rt.ResponseHeaders {
		if b.ownHeaders == nil {
			b.ownHeaders = make(map[string]bool, len(rt.ResponseHeaders))
		}
		b.ownHeaders[k] = true
	}
	names, err := gateway.PathVars(r.path)
	if err != nil {
		return nil, fmt.Errorf("path template %q: %v", r.path, err)
	}
	for _, name := range names {
		fds, err := resolve(rt.Input, strings.Split(name, "."))
		if err != nil {
			return nil, fmt.Errorf("path variable {%s}: %v", name, err)
		}
		if last := fds[len(fds)-1]; last.IsList() || last.IsMap() {
			return nil, fmt.Errorf("path variable {%s}: %s is repeated", name, last.FullName())
		}
		b.vars = append(b.vars, pathVar{path: name, fields: fds})
		b.bound = append(b.bound, dotted(fds))
	}
	switch r.body {
	case "":
	case "*":
		b.wholeBody = true
	default:
		if b.bodyField = rt.Input.Fields().ByName(protoreflect.Name(r.body)); b.bodyField == nil {
			return nil, fmt.Errorf("body: %s has no field %q", rt.Input.FullName(), r.body)
		}
		b.bound = append(b.bound, r.body)
	}
	if r.responseBody != "" {
		if b.respField = rt.Output.Fields().ByName(protoreflect.Name(r.responseBody)); b.respField == nil {
			return nil, fmt.Errorf("response_body: %s has no field %q", rt.Output.FullName(), r.responseBody)
		}
	}
	seqs := make([][]string, len(b.bound))
	for i, p := range b.bound {
		seqs[i] = strings.Split(p, ".")
	}
	b.filter = utilities.NewDoubleArray(seqs)
	return b, nil
}

// resolve finds a dotted field path in md by proto names (the query also
// accepts JSON names, see [queryField]); every field but the last must be a
// singular message.
func resolve(md protoreflect.MessageDescriptor, names []string) ([]protoreflect.FieldDescriptor, error) {
	fds := make([]protoreflect.FieldDescriptor, 0, len(names))
	for i, name := range names {
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			fd = md.Fields().ByJSONName(name)
		}
		if fd == nil {
			return nil, fmt.Errorf("%s has no field %q", md.FullName(), name)
		}
		fds = append(fds, fd)
		if i == len(names)-1 {
			break
		}
		if fd.Message() == nil || fd.IsList() || fd.IsMap() {
			return nil, fmt.Errorf("%s is not a singular message field", fd.FullName())
		}
		md = fd.Message()
	}
	return fds, nil
}

// dotted is the proto-name path of fds, "order.id".
func dotted(fds []protoreflect.FieldDescriptor) string {
	var sb strings.Builder
	for i, fd := range fds {
		if i > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(string(fd.Name()))
	}
	return sb.String()
}

// isBound reports whether the dotted field path p is set by the path or
// the body, or holds such a field (grpc-gateway's query filter).
func (b *binding) isBound(p string) bool {
	if b.wholeBody {
		return true
	}
	for _, q := range b.bound {
		if p == q || strings.HasPrefix(p, q+".") || strings.HasPrefix(q, p+".") {
			return true
		}
	}
	return false
}
