package httpin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/figway/figway/gateway"
)

// The OpenAPI document of the REST bindings (docs/rest.md, "OpenAPI"): one
// operation per binding the ingress serves, built from the same bindings,
// so that it cannot describe a request the ingress would not take.

// OpenAPI returns the OpenAPI 3.1 document, JSON, of the REST bindings that
// a Server with options o would serve for route table t: what
// `figway openapi` prints. It fails as New does, when a rule cannot be
// served.
func OpenAPI(t *gateway.Table, o Options) ([]byte, error) {
	s := &Server{opts: o}
	rt, err := s.newRouter(t)
	if err != nil {
		return nil, err
	}
	return rt.openapi, nil
}

// serveOpenAPI answers GET and HEAD of the OpenAPI path with the document of
// the bindings serving now.
func (rt *router) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache") // it changes on reload
	if r.Method == http.MethodGet {
		w.Write(rt.openapi)
	}
}

type document struct {
	OpenAPI    string              `json:"openapi"`
	Info       info                `json:"info"`
	Tags       []tag               `json:"tags,omitempty"`
	Paths      map[string]pathItem `json:"paths"`
	Components components          `json:"components"`
}

type info struct {
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Version     string `json:"version"`
}

type tag struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// pathItem maps lower-case verbs to operations. Verbs outside OpenAPI's
// eight (a google.api.http custom kind such as MOVE) go under
// x-additionalOperations, in the shape OpenAPI 3.2 gives additionalOperations.
type pathItem map[string]any

type components struct {
	Schemas         map[string]*schema         `json:"schemas"`
	Responses       map[string]*response       `json:"responses"`
	SecuritySchemes map[string]*securityScheme `json:"securitySchemes,omitempty"`
}

// securityScheme is the bearer scheme of the routes with auth.
type securityScheme struct {
	Type         string `json:"type"`
	Scheme       string `json:"scheme"`
	BearerFormat string `json:"bearerFormat,omitempty"`
	Description  string `json:"description,omitempty"`
}

// bearerScheme names the security scheme of the routes with auth.
const bearerScheme = "bearer"

type operation struct {
	OperationID string               `json:"operationId"`
	Tags        []string             `json:"tags"`
	Summary     string               `json:"summary,omitempty"`
	Description string               `json:"description,omitempty"`
	Deprecated  bool                 `json:"deprecated,omitempty"`
	Parameters  []*parameter         `json:"parameters,omitempty"`
	RequestBody *requestBody         `json:"requestBody,omitempty"`
	Responses   map[string]*response `json:"responses"`
	// Security, on an operation of a route with auth, requires the bearer
	// scheme.
	Security []map[string][]string `json:"security,omitempty"`
}

type parameter struct {
	Name        string  `json:"name"`
	In          string  `json:"in"`
	Description string  `json:"description,omitempty"`
	Required    bool    `json:"required,omitempty"`
	Deprecated  bool    `json:"deprecated,omitempty"`
	Schema      *schema `json:"schema"`
}

type requestBody struct {
	Description string               `json:"description,omitempty"`
	Content     map[string]mediaType `json:"content"`
}

type response struct {
	Ref         string               `json:"$ref,omitempty"`
	Description string               `json:"description,omitempty"`
	Headers     map[string]*header   `json:"headers,omitempty"`
	Content     map[string]mediaType `json:"content,omitempty"`
}

type header struct {
	Description string  `json:"description,omitempty"`
	Required    bool    `json:"required,omitempty"`
	Schema      *schema `json:"schema"`
}

type mediaType struct {
	Schema *schema `json:"schema"`
}

const jsonType = "application/json"

// standardVerbs are the operations a 3.1 path item has fields for.
var standardVerbs = map[string]bool{"GET": true, "PUT": true, "POST": true, "DELETE": true,
	"OPTIONS": true, "HEAD": true, "PATCH": true, "TRACE": true}

// openAPI builds the document of the router's bindings.
func (rt *router) openAPI(o Options) ([]byte, error) {
	ss := &schemas{protoNames: o.UseProtoNames, emitUnpopulated: o.EmitUnpopulated, defs: map[string]*schema{}}
	doc := document{
		OpenAPI: "3.1.0",
		Info: info{
			Title:       "figway",
			Description: "The REST/JSON bindings that figway serves, from the google.api.http rules of the routed methods (docs/rest.md).",
			Version:     o.Version,
		},
		Paths: map[string]pathItem{},
		Components: components{Schemas: ss.defs, Responses: map[string]*response{
			"Error": {Description: "The call failed: the HTTP status maps the gRPC code (docs/errors.md).",
				Content: map[string]mediaType{jsonType: {Schema: ss.status()}}},
		}},
	}
	if doc.Info.Version == "" {
		doc.Info.Version = "unversioned"
	}
	services := map[string]bool{}
	perMethod := map[string]int{}
	for _, b := range rt.bindings {
		md, err := methodOf(rt.table.Files(), b.method)
		if err != nil {
			return nil, err
		}
		svc := md.Parent()
		if !services[string(svc.FullName())] {
			services[string(svc.FullName())] = true
			doc.Tags = append(doc.Tags, tag{Name: string(svc.FullName()), Description: comments(svc)})
		}
		op := ss.operation(b, md)
		doc.edgeChecks(op, b.route)
		if n := perMethod[b.method]; n > 0 {
			op.OperationID += fmt.Sprintf("_%d", n+1)
		}
		perMethod[b.method]++
		path, params := openAPIPath(b, ss)
		op.Parameters = append(params, op.Parameters...)
		doc.put(path, b.verb, op)
	}
	return json.MarshalIndent(doc, "", "  ")
}

// edgeChecks adds to op what route r's auth and rate_limit answer: the
// bearer scheme and 401, and 429.
func (doc *document) edgeChecks(op *operation, r *gateway.Route) {
	if r.Auth != nil {
		op.Security = []map[string][]string{{bearerScheme: {}}}
		doc.Components.SecuritySchemes = map[string]*securityScheme{bearerScheme: {Type: "http", Scheme: "bearer", BearerFormat: "JWT",
			Description: "A JSON Web Token of the route's issuer and audiences: Authorization: Bearer <token> (docs/operations.md, \"Authentication and rate limits\")."}}
		op.Responses["401"] = &response{Ref: "#/components/responses/Error"}
	}
	if r.RateLimit != nil {
		op.Responses["429"] = &response{Ref: "#/components/responses/Error"}
	}
}

// put adds op to the document under path and verb; a custom verb goes
// under x-additionalOperations.
func (doc *document) put(path, verb string, op *operation) {
	item := doc.Paths[path]
	if item == nil {
		item = pathItem{}
		doc.Paths[path] = item
	}
	if standardVerbs[verb] {
		item[strings.ToLower(verb)] = op
		return
	}
	more, _ := item["x-additionalOperations"].(map[string]*operation)
	if more == nil {
		more = map[string]*operation{}
		item["x-additionalOperations"] = more
	}
	more[verb] = op
}

// operation describes binding b of method md, but for its path parameters.
func (ss *schemas) operation(b *binding, md protoreflect.MethodDescriptor) *operation {
	doc := comments(md)
	op := &operation{
		OperationID: string(md.Parent().Name()) + "_" + string(md.Name()),
		Tags:        []string{string(md.Parent().FullName())},
		Summary:     summary(doc, md),
		Description: join(doc, "gRPC: "+b.method),
		Deprecated:  deprecated(md),
		Parameters:  ss.query(b),
		Responses:   map[string]*response{"default": {Ref: "#/components/responses/Error"}},
	}
	switch {
	case b.wholeBody:
		op.RequestBody = &requestBody{Content: map[string]mediaType{jsonType: {Schema: ss.message(b.input)}}}
	case b.bodyField != nil:
		op.RequestBody = &requestBody{
			Description: "The request's " + string(b.bodyField.Name()) + " field.",
			Content:     map[string]mediaType{jsonType: {Schema: ss.field(b.bodyField)}},
		}
	}
	out := ss.message(b.output)
	what := "The reply, " + string(b.output.FullName()) + "."
	if b.respField != nil {
		out = ss.field(b.respField)
		what = "The reply's " + string(b.respField.Name()) + " field."
	}
	if md.IsStreamingServer() {
		op.Responses["200"] = ss.streamResponse(b, out)
		return op
	}
	r := b.route
	event := r.Pattern == gateway.PatternEvent && r.To == gateway.TargetBroker
	if event {
		op.Responses["202"] = &response{
			Description: "Accepted: the broker has the event; nobody waits for a reply, and the body is an empty " + string(b.output.FullName()) + ".",
			Headers: map[string]*header{HeaderEventID: {
				Description: "The id of the event message published.", Required: true, Schema: &schema{Type: "string"}}},
			Content: map[string]mediaType{jsonType: {Schema: out}},
		}
	}
	if !event || r.Weight != nil || r.Fallback == gateway.TargetLegacy {
		op.Responses["200"] = &response{Description: what, Content: map[string]mediaType{jsonType: {Schema: out}}}
	}
	return op
}

// streamResponse is the answer of a server-streaming method: one line of
// newline-delimited JSON per message, or one server-sent event when the
// caller asks for text/event-stream (docs/rest.md, "Streaming methods").
func (ss *schemas) streamResponse(b *binding, out *schema) *response {
	name := string(b.output.FullName())
	line := &schema{
		Type:        "object",
		Description: `One line of the stream: {"result": message} for each message, then {"error": status} if the stream ends with an error.`,
		Properties:  properties{{"result", out}, {"error", ss.status()}},
	}
	return &response{
		Description: "A stream of " + name + " messages, each sent as the worker sends it: newline-delimited JSON, " +
			`one {"result": …} line per message, and a last {"error": …} line when the stream fails after it began ` +
			"(the HTTP status is then 200). With Accept: text/event-stream, server-sent events instead: " +
			`"data: message" per message and an "error" event for a failed end.`,
		Content: map[string]mediaType{
			jsonType:               {Schema: line},
			ContentTypeEventStream: {Schema: &schema{Type: "string", Description: "Server-sent events, one per message."}},
		},
	}
}

// summary is the first sentence of a method's comment, or its name.
func summary(doc string, md protoreflect.MethodDescriptor) string {
	first, _, _ := strings.Cut(doc, "\n\n")
	first = oneLine(first)
	if i := strings.Index(first, ". "); i >= 0 {
		first = first[:i+1]
	}
	if first == "" || len(first) > 120 {
		return string(md.Name())
	}
	return first
}

// query returns the query parameters of binding b: every field that
// neither the path nor the body sets, by its dotted path through singular
// messages, as grpc-gateway's query parser reads them. Map fields and
// repeated messages cannot be set from the query and are left out.
func (ss *schemas) query(b *binding) []*parameter {
	if b.wholeBody {
		return nil
	}
	var params []*parameter
	var walk func(md protoreflect.MessageDescriptor, protoPath, jsonPath string, seen map[protoreflect.FullName]bool)
	walk = func(md protoreflect.MessageDescriptor, protoPath, jsonPath string, seen map[protoreflect.FullName]bool) {
		if seen[md.FullName()] {
			return // a message that holds itself: its fields are listed once
		}
		seen[md.FullName()] = true
		defer delete(seen, md.FullName())
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			pp, jp := protoPath+string(fd.Name()), jsonPath+ss.name(fd)
			if b.isBound(pp) || fd.IsMap() {
				continue
			}
			if m := fd.Message(); m != nil && wellKnown(m) == nil {
				if !fd.IsList() {
					walk(m, pp+".", jp+".", seen)
				}
				continue
			}
			if m := fd.Message(); m != nil && !queryable(m) {
				continue
			}
			s := ss.field(fd)
			p := &parameter{Name: jp, In: "query", Description: s.Description, Deprecated: s.Deprecated}
			s.Description, s.Deprecated = "", false
			if len(s.AnyOf) == 1 && s.Type == nil {
				s = s.AnyOf[0] // the wrapper only held the description
			}
			p.Schema = s
			params = append(params, p)
		}
	}
	walk(b.input, "", "", map[protoreflect.FullName]bool{})
	return params
}

// queryable reports whether grpc-gateway's query parser reads a well-known
// type from a string.
func queryable(md protoreflect.MessageDescriptor) bool {
	switch md.FullName() {
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue",
		"google.protobuf.Any", "google.protobuf.Empty":
		return false
	}
	return true
}

// openAPIPath turns the binding's path template into an OpenAPI path and
// its path parameters. A variable that takes one segment ({order_id},
// {name=*}) stays one parameter; one whose template holds literal segments
// ({name=shelves/*/books/*}) is written out, with a parameter for each
// wildcard named by the literal before it, made singular
// (/v1/shelves/{shelf}/books/{book}): OpenAPI's parameters cannot hold a
// "/". A "**" wildcard becomes one parameter whose value may hold "/".
func openAPIPath(b *binding, ss *schemas) (string, []*parameter) {
	parts, _ := gateway.ParsePath(b.template) // newBinding parsed it already
	var sb strings.Builder
	var params []*parameter
	used := map[string]int{}
	unique := func(name string) string {
		used[name]++
		if n := used[name]; n > 1 {
			return fmt.Sprintf("%s%d", name, n)
		}
		return name
	}
	for _, part := range parts {
		if part.Var == "" {
			sb.WriteString(part.Literal)
			continue
		}
		params = append(params, ss.pathVar(b, part, unique, &sb)...)
	}
	return sb.String(), params
}

// pathVar writes variable v of b's template to sb and returns its
// parameters: one, or one per wildcard of a pattern with literal segments
// (see openAPIPath); unique makes their names unique in the path.
func (ss *schemas) pathVar(b *binding, v gateway.PathPart, unique func(string) string, sb *strings.Builder) []*parameter {
	name, pattern := v.Var, v.Pattern
	fd := b.fieldOf(name)
	doc := ""
	if fd != nil {
		doc = comments(fd)
	}
	if pattern == "*" || pattern == "**" {
		s := &schema{Type: "string"}
		if fd != nil {
			s = ss.value(fd)
		}
		if pattern == "**" {
			doc = join(doc, "The value may hold \"/\", which is sent unescaped.")
		}
		p := &parameter{Name: unique(name), In: "path", Required: true, Description: doc, Schema: s}
		sb.WriteString("{" + p.Name + "}")
		return []*parameter{p}
	}
	var params []*parameter
	prev := name
	for i, seg := range strings.Split(pattern, "/") {
		if i > 0 {
			sb.WriteByte('/')
		}
		if seg != "*" && seg != "**" {
			sb.WriteString(seg)
			prev = singular(seg)
			continue
		}
		p := &parameter{
			Name: unique(prev), In: "path", Required: true,
			Description: join(doc, fmt.Sprintf("A segment of %s, which the path sets to %q.", name, pattern)),
			Schema:      &schema{Type: "string"},
		}
		if seg == "**" {
			p.Description = join(p.Description, "The value may hold \"/\", which is sent unescaped.")
		}
		sb.WriteString("{" + p.Name + "}")
		params = append(params, p)
	}
	return params
}

// fieldOf returns the leaf field of a path variable, or nil.
func (b *binding) fieldOf(name string) protoreflect.FieldDescriptor {
	for _, v := range b.vars {
		if v.path == name {
			return v.fields[len(v.fields)-1]
		}
	}
	return nil
}

// singular makes a collection name singular enough for a parameter name:
// shelves → shelf, books → book, entries → entry.
func singular(s string) string {
	switch {
	case strings.HasSuffix(s, "ies") && len(s) > 3:
		return s[:len(s)-3] + "y"
	case strings.HasSuffix(s, "ves") && len(s) > 3:
		return s[:len(s)-3] + "f"
	case strings.HasSuffix(s, "ses") || strings.HasSuffix(s, "xes"):
		return s[:len(s)-2]
	case strings.HasSuffix(s, "s") && len(s) > 1 && !strings.HasSuffix(s, "ss"):
		return s[:len(s)-1]
	}
	return s
}
