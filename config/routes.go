package config

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/figway/figway/config/yamlfile"
)

// A setting is one key of a route: how its YAML value decodes into the
// Route, and whether defaults may set it for every route (a route then
// inherits it as [Route.inherit] says). Adding a route setting is adding
// its field to gateway.RouteSpec and its line here.
type setting struct {
	key       string
	inherited bool
	decode    func(d *decoder, v *yamlfile.Value, path string, r *Route)
}

// settings is the route schema, for defaults and for each item of routes.
var settings = []setting{
	{"shadow", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.Shadow, r.ShadowPercent = d.shadow(v, p) }},
	{"auth", true, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.Auth, r.AuthOff = d.auth(v, p) }},
	{"rate_limit", true, func(d *decoder, v *yamlfile.Value, p string, r *Route) {
		r.RateLimit, r.RateLimitOff = d.rateLimit(v, p)
	}},
	{"method", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.Method = d.Str(v, p) }},
	{"to", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) {
		r.To = yamlfile.Enum(d.Decoder, v, p, TargetBroker, TargetLegacy)
	}},
	{"exchange", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.Exchange = d.Str(v, p) }},
	{"routing_key", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.RoutingKey = d.Str(v, p) }},
	{"queue", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.Queue = d.Str(v, p) }},
	{"pattern", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) {
		r.Pattern = yamlfile.Enum(d.Decoder, v, p, PatternRPC, PatternEvent)
	}},
	{"timeout", true, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.Timeout = d.Duration(v, p) }},
	{"encoding", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) {
		r.Encoding = yamlfile.Enum(d.Decoder, v, p, EncodingProtobuf, EncodingJSON)
	}},
	{"fallback", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) {
		r.Fallback = yamlfile.Enum(d.Decoder, v, p, TargetLegacy)
	}},
	{"max_in_flight", true, func(d *decoder, v *yamlfile.Value, p string, r *Route) {
		r.MaxInFlight = d.Positive(v, p, maxInFlight, "")
	}},
	{"breaker", true, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.Breaker = d.breaker(v, p) }},
	{"forward_headers", true, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.Forward = d.headers(v, p) }},
	{"http", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.HTTP = d.httpRule(v, p) }},
	{"retry", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) {
		r.Retry = yamlfile.Enum(d.Decoder, v, p, RetryIdempotent)
	}},
	{"weight", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) {
		r.Weight = d.percent(v, p, "calls sent to the broker")
	}},
	{"sticky_by", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.StickyBy = strings.ToLower(d.Str(v, p)) }},
	{"compare", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.Compare = d.Bool(v, p) }},
	{"wire", true, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.Wire = d.wire(v, p) }},
	{"async", true, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.Async = d.async(v, p) }},
	{"stream", true, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.Stream = d.streamBounds(v, p) }},
	{"ignore_fields", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.IgnoreFields = d.fieldPaths(v, p) }},
	{"ramp", true, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.Ramp = d.ramp(v, p) }},
	{"pin_by", true, func(d *decoder, v *yamlfile.Value, p string, r *Route) { r.PinBy = d.header(v, p) }},
	{"response_headers", true, func(d *decoder, v *yamlfile.Value, p string, r *Route) {
		r.ResponseHeaders = d.responseHeaders(v, p)
	}},
	{"ignore_metadata", false, func(d *decoder, v *yamlfile.Value, p string, r *Route) {
		r.IgnoreMetadata = d.metadataKeys(v, p)
	}},
}

// keys returns the YAML keys of settings: all of them, or the inherited
// ones only (those defaults may set).
func keys(inheritedOnly bool) []string {
	var ks []string
	for _, s := range settings {
		if s.inherited || !inheritedOnly {
			ks = append(ks, s.key)
		}
	}
	return ks
}

func (d *decoder) routes(v *yamlfile.Value, path string) []Route {
	items, _ := d.Items(v, path)
	var routes []Route
	for i, it := range items {
		p := yamlfile.Index(path, i)
		routes = append(routes, d.route(d.object(it, p, keys(false)...), p))
	}
	return routes
}

// defaults decodes the defaults key as a Route that sets only inherited
// settings.
func (d *decoder) defaults(v *yamlfile.Value, path string) Route {
	return d.route(d.Fields(v, path, keys(true)...), path)
}

// route decodes the fields of a route, or of defaults, with settings.
func (d *decoder) route(f map[string]*yamlfile.Value, path string) Route {
	var r Route
	for _, s := range settings {
		s.decode(d, f[s.key], yamlfile.Field(path, s.key), &r)
	}
	return r
}

// validateRoutes checks what involves more than one value of a route, or
// the descriptors; it runs after defaults and fills in each Route.Desc.
func validateRoutes(c *Config, p *yamlfile.Problems, broken map[string]bool) {
	seen := map[string]string{} // method → path of its route
	for i := range c.Routes {
		r, path := &c.Routes[i], yamlfile.Index("routes", i)
		if broken[path] {
			continue
		}
		if resolveMethod(c.Files, r, path, p) {
			if first, dup := seen[r.Method]; dup {
				p.At(yamlfile.Field(path, "method"), "%s already has a route, %s; a method may have one only", r.Method, first)
			} else {
				seen[r.Method] = path
			}
		}
		validateTarget(c, r, path, p)
		validateMigration(c, r, path, p)
		validateRamp(c, r, path, p)
		if r.HTTP != nil && r.Desc != nil {
			validateHTTPRule(r.HTTP, r.Desc, yamlfile.Field(path, "http"), p)
		}
	}
}

// resolveMethod checks the method's name, finds it in files (nil when the
// descriptors failed to load) and sets r.Desc. It reports whether the name
// is well-formed.
func resolveMethod(files *protoregistry.Files, r *Route, path string, p *yamlfile.Problems) bool {
	mp := yamlfile.Field(path, "method")
	if r.Method == "" {
		p.Once(mp, "required: the full gRPC method name, such as orders.v1.OrderService/GetOrder")
		return false
	}
	svc, name, ok := strings.Cut(r.Method, "/")
	if !ok || !protoreflect.FullName(svc).IsValid() || !protoreflect.Name(name).IsValid() {
		hint := ""
		if strings.HasPrefix(r.Method, "/") {
			hint = " (without the leading slash)"
		}
		p.At(mp, "%q is not a method name; want package.Service/Method%s, such as orders.v1.OrderService/GetOrder", r.Method, hint)
		return false
	}
	if files == nil {
		return true
	}
	var md protoreflect.MethodDescriptor
	if d, err := files.FindDescriptorByName(protoreflect.FullName(svc)); err == nil {
		if sd, ok := d.(protoreflect.ServiceDescriptor); ok {
			md = sd.Methods().ByName(protoreflect.Name(name))
		}
	}
	if md == nil {
		msg := fmt.Sprintf("%s not found in descriptors", r.Method)
		if s := yamlfile.Suggest(r.Method, methodNames(files)); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		p.At(mp, "%s", msg)
		return true
	}
	r.Desc = md
	validateStreaming(r, path, p)
	return true
}

func streaming(md protoreflect.MethodDescriptor) string {
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return "bidirectional-streaming"
	case md.IsStreamingClient():
		return "client-streaming"
	case md.IsStreamingServer():
		return "server-streaming"
	}
	return ""
}

// methodNames lists every method of files as package.Service/Method.
func methodNames(files *protoregistry.Files) []string {
	var names []string
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				names = append(names, string(sd.FullName())+"/"+string(sd.Methods().Get(j).Name()))
			}
		}
		return true
	})
	return names
}

// validateTarget checks that the settings of a route fit where it sends
// its calls. Defaults are applied: a Pattern or Encoding on a legacy route
// that does not shadow was written in the file.
func validateTarget(c *Config, r *Route, path string, p *yamlfile.Problems) {
	if p.Reported[yamlfile.Field(path, "to")] || p.Reported[yamlfile.Field(path, "shadow")] {
		return // the checks below depend on them
	}
	hasLegacy := c.Legacy.GRPC != "" || c.Legacy.HTTP != ""
	if r.Fallback == TargetLegacy && !hasLegacy && r.To != TargetLegacy {
		p.Once(yamlfile.Field(path, "fallback"), "fallback: legacy needs a legacy upstream; set legacy.grpc or legacy.http")
	}
	switch r.To {
	case TargetBroker:
		if r.RoutingKey == "" {
			p.Once(yamlfile.Field(path, "routing_key"), "required when to is broker: the routing key to publish with (on the default exchange, the name of the queue)")
		}
		if r.Shadow && r.Ramp == nil {
			p.Once(yamlfile.Field(path, "shadow"), "only a route with to: legacy, or a ramp's legacy side, can shadow; a broker route publishes every call already")
		}
	case TargetLegacy:
		if !hasLegacy {
			p.Once(yamlfile.Field(path, "to"), "to: legacy needs a legacy upstream; set legacy.grpc or legacy.http")
		}
		if r.Fallback != "" {
			p.Once(yamlfile.Field(path, "fallback"), "a route with to: legacy has nothing to fall back from; fallback is for broker routes")
		}
		if r.Shadow {
			if r.RoutingKey == "" {
				p.Once(yamlfile.Field(path, "routing_key"), "required with shadow: true: the routing key of the mirrored events")
			}
			if r.Compare && r.Pattern == PatternEvent {
				p.Once(yamlfile.Field(path, "pattern"), "a compared shadow copy waits for its reply: leave pattern out or set it to rpc")
			} else if !r.Compare && r.Pattern == PatternRPC {
				p.Once(yamlfile.Field(path, "pattern"), "a shadow copy is an event that nobody waits for unless compare is set; leave pattern out or set it to event")
			}
			return
		}
		unused := "only for routes that publish: set to: broker, or shadow: true to mirror the calls as events"
		if r.Exchange != "" {
			p.Once(yamlfile.Field(path, "exchange"), "%s", unused)
		}
		if r.RoutingKey != "" {
			p.Once(yamlfile.Field(path, "routing_key"), "%s", unused)
		}
		if r.Queue != "" {
			p.Once(yamlfile.Field(path, "queue"), "%s", unused)
		}
		if r.Pattern != "" {
			p.Once(yamlfile.Field(path, "pattern"), "%s", unused)
		}
		if r.Encoding != "" {
			p.Once(yamlfile.Field(path, "encoding"), "%s", unused)
		}
		if r.Wire != (Wire{}) {
			p.Once(yamlfile.Field(path, "wire"), "%s", unused)
		}
	}
}
