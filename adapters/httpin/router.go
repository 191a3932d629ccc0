package httpin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/figway/figway/gateway"

	// google.rpc error details (ErrorInfo, BadRequest, ...) are rendered in
	// error bodies even when the descriptor set does not hold them.
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"
)

// router is the REST face of one route table: a grpc-gateway ServeMux with
// a handler for every HTTP binding of every method the gateway takes (routed
// to the broker, or shadowed),
// and the marshaler and decoder for the table's types. A reload builds a
// new router and swaps it in whole.
type router struct {
	table     *gateway.Table
	mux       *runtime.ServeMux
	marshaler *runtime.JSONPb
	types     resolver
	dec       decoder
	bindings  []*binding
	// verbs are the HTTP methods the bindings use, sorted.
	verbs   []string
	openapi []byte // the OpenAPI document of bindings
}

// newRouter builds the router of table t. It fails, with every problem
// found, when a rule cannot be served: a path template grpc-gateway cannot
// parse, a variable or body that names no field, two methods on the same
// verb and path.
func (s *Server) newRouter(t *gateway.Table) (*router, error) {
	rt := &router{table: t, types: resolver{local: t.Types()}}
	rt.marshaler = &runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{
			Resolver:        rt.types,
			UseProtoNames:   s.opts.UseProtoNames,
			EmitUnpopulated: s.opts.EmitUnpopulated,
			AllowPartial:    true,
		},
		UnmarshalOptions: protojson.UnmarshalOptions{Resolver: rt.types, DiscardUnknown: s.opts.DiscardUnknown, AllowPartial: true},
	}
	rt.dec = decoder{json: rt.marshaler.UnmarshalOptions, strict: !s.opts.DiscardUnknown, maxBody: int64(s.opts.MaxRequestBytes)}
	rt.mux = runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, rt.marshaler),
		// The fallback reads a form body into the query without the size
		// limit; figway serves JSON bodies only.
		runtime.WithDisablePathLengthFallback(),
		runtime.WithRoutingErrorHandler(s.routingError),
	)
	var errs []error
	seen := map[string]string{} // "VERB /template" → method
	if s.opts.Operations != nil {
		if err := s.operationRoutes(rt, seen); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range t.Routes() {
		errs = append(errs, s.bind(rt, r, seen)...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.Sort(rt.verbs)
	var err error
	if rt.openapi, err = rt.openAPI(s.opts); err != nil {
		return nil, fmt.Errorf("OpenAPI document: %w", err)
	}
	return rt, nil
}

// bind binds the HTTP rules of route r on rt: a route the gateway
// publishes, or one of the passthrough's whose edge checks figway makes
// (guarded). seen maps "VERB /template" to the method bound there.
func (s *Server) bind(rt *router, r *gateway.Route, seen map[string]string) (errs []error) {
	guarded := !r.Publishes() && r.Checked() && s.opts.Passthrough != nil
	if !r.Publishes() && !guarded {
		return nil // not migrated: the passthrough's, when there is one
	}
	md, err := methodOf(rt.table.Files(), r.Method)
	if err != nil {
		return []error{err}
	}
	for _, ru := range rulesOf(r, md) {
		b, err := newBinding(s.gw, r, ru)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s %s: %v", r.Method, ru.verb, ru.path, err))
			continue
		}
		key := b.verb + " " + b.template
		if other, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("%s: %s is bound by %s already", r.Method, key, other))
			continue
		}
		h := s.handler(rt, b)
		if guarded {
			h = s.guard(rt, b) // checked, then passed through
		}
		if err := rt.mux.HandlePath(b.verb, b.template, h); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %v", r.Method, key, err))
			continue
		}
		seen[key] = r.Method
		if guarded {
			continue // legacy's: not in figway's OpenAPI document
		}
		rt.bindings = append(rt.bindings, b)
		rt.addVerb(b.verb)
	}
	return errs
}

// asyncOf returns the async settings of b's route, or nil.
func asyncOf(b *binding) *gateway.Async {
	if b.route.To == gateway.TargetBroker {
		return b.route.Async
	}
	return nil
}

// methodOf finds "pkg.Service/Method" in files.
func methodOf(files *protoregistry.Files, method string) (protoreflect.MethodDescriptor, error) {
	svc, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	d, err := files.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, fmt.Errorf("%s: service not in the descriptors: %v", method, err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s: %s is not a service", method, svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, fmt.Errorf("%s: no such method in the descriptors", method)
	}
	return md, nil
}

// resolver finds message and extension types in the route table's
// descriptors first, then among the types compiled into figway (the
// well-known types, google.rpc error details), for google.protobuf.Any.
type resolver struct{ local *dynamicpb.Types }

func (r resolver) FindMessageByName(n protoreflect.FullName) (protoreflect.MessageType, error) {
	if mt, err := r.local.FindMessageByName(n); err == nil {
		return mt, nil
	}
	return protoregistry.GlobalTypes.FindMessageByName(n)
}

func (r resolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if mt, err := r.local.FindMessageByURL(url); err == nil {
		return mt, nil
	}
	return protoregistry.GlobalTypes.FindMessageByURL(url)
}

func (r resolver) FindExtensionByName(n protoreflect.FullName) (protoreflect.ExtensionType, error) {
	if xt, err := r.local.FindExtensionByName(n); err == nil {
		return xt, nil
	}
	return protoregistry.GlobalTypes.FindExtensionByName(n)
}

func (r resolver) FindExtensionByNumber(m protoreflect.FullName, n protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	if xt, err := r.local.FindExtensionByNumber(m, n); err == nil {
		return xt, nil
	}
	return protoregistry.GlobalTypes.FindExtensionByNumber(m, n)
}

// routingError answers a request that no binding takes. With a
// passthrough, it goes there (the legacy service, which may serve another
// verb on a migrated path). Without one: 404 for an unknown path, 405 for
// a known path with another verb — where grpc-gateway's default handler
// would answer 501 — and 400 for a path it cannot read. The path is
// quoted: protojson refuses a message that is not UTF-8.
func (s *Server) routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if probeFrom(ctx) != nil {
		return // a CORS preflight's question: not bound
	}
	if s.opts.Passthrough != nil && (httpStatus == http.StatusNotFound || httpStatus == http.StatusMethodNotAllowed) {
		s.opts.Passthrough.ServeHTTP(w, r)
		return
	}
	var st *status.Status
	switch httpStatus {
	case http.StatusNotFound:
		st = status.Newf(codes.NotFound, "no REST binding for %s %q", r.Method, r.URL.Path)
	case http.StatusMethodNotAllowed:
		st = status.Newf(codes.Unimplemented, "%s %q: method not allowed", r.Method, r.URL.Path)
	case http.StatusBadRequest:
		st = status.Newf(codes.InvalidArgument, "bad path %q", r.URL.Path)
	default:
		st = status.New(codes.Internal, http.StatusText(httpStatus))
	}
	runtime.HTTPError(ctx, mux, m, w, r, &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: st.Err()})
}
