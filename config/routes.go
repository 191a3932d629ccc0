package config

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/figway/figway/config/yamlfile"
)

var routeKeys = []string{
	"method", "to", "exchange", "routing_key", "pattern", "timeout", "encoding",
	"fallback", "shadow", "max_in_flight", "breaker", "forward_headers", "http",
	"retry", "weight", "sticky_by", "compare", "ignore_fields", "wire", "async",
	"pin_by", "response_headers", "ignore_metadata", "queue", "auth", "rate_limit",
}

func (d *decoder) routes(v *yamlfile.Value, path string) []Route {
	items, _ := d.Items(v, path)
	var routes []Route
	for i, it := range items {
		routes = append(routes, d.route(it, yamlfile.Index(path, i)))
	}
	return routes
}

func (d *decoder) route(v *yamlfile.Value, path string) Route {
	f := d.object(v, path, routeKeys...)
	shadow, percent := d.shadow(f["shadow"], yamlfile.Field(path, "shadow"))
	jwt, authOff := d.auth(f["auth"], yamlfile.Field(path, "auth"))
	limit, limitOff := d.rateLimit(f["rate_limit"], yamlfile.Field(path, "rate_limit"))
	return Route{
		Auth:            jwt,
		AuthOff:         authOff,
		RateLimit:       limit,
		RateLimitOff:    limitOff,
		Method:          d.Str(f["method"], yamlfile.Field(path, "method")),
		To:              yamlfile.Enum(d.Decoder, f["to"], yamlfile.Field(path, "to"), TargetBroker, TargetLegacy),
		Exchange:        d.Str(f["exchange"], yamlfile.Field(path, "exchange")),
		RoutingKey:      d.Str(f["routing_key"], yamlfile.Field(path, "routing_key")),
		Queue:           d.Str(f["queue"], yamlfile.Field(path, "queue")),
		Pattern:         yamlfile.Enum(d.Decoder, f["pattern"], yamlfile.Field(path, "pattern"), PatternRPC, PatternEvent),
		Timeout:         d.Duration(f["timeout"], yamlfile.Field(path, "timeout")),
		Encoding:        yamlfile.Enum(d.Decoder, f["encoding"], yamlfile.Field(path, "encoding"), EncodingProtobuf, EncodingJSON),
		Fallback:        yamlfile.Enum(d.Decoder, f["fallback"], yamlfile.Field(path, "fallback"), TargetLegacy),
		Shadow:          shadow,
		ShadowPercent:   percent,
		MaxInFlight:     d.Positive(f["max_in_flight"], yamlfile.Field(path, "max_in_flight"), maxInFlight, ""),
		Breaker:         d.breaker(f["breaker"], yamlfile.Field(path, "breaker")),
		ForwardHeaders:  d.headers(f["forward_headers"], yamlfile.Field(path, "forward_headers")),
		HTTP:            d.httpRule(f["http"], yamlfile.Field(path, "http")),
		Retry:           yamlfile.Enum(d.Decoder, f["retry"], yamlfile.Field(path, "retry"), RetryIdempotent),
		Weight:          d.percent(f["weight"], yamlfile.Field(path, "weight"), "calls sent to the broker"),
		StickyBy:        strings.ToLower(d.Str(f["sticky_by"], yamlfile.Field(path, "sticky_by"))),
		Compare:         d.Bool(f["compare"], yamlfile.Field(path, "compare")),
		Wire:            d.wire(f["wire"], yamlfile.Field(path, "wire")),
		Async:           d.async(f["async"], yamlfile.Field(path, "async")),
		IgnoreFields:    d.fieldPaths(f["ignore_fields"], yamlfile.Field(path, "ignore_fields")),
		PinBy:           d.header(f["pin_by"], yamlfile.Field(path, "pin_by")),
		ResponseHeaders: d.responseHeaders(f["response_headers"], yamlfile.Field(path, "response_headers")),
		IgnoreMetadata:  d.metadataKeys(f["ignore_metadata"], yamlfile.Field(path, "ignore_metadata")),
	}
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
	if kind := streaming(md); kind != "" {
		switch {
		case r.To == TargetBroker:
			p.At(mp, "%s is %s; only unary methods can be bridged to RabbitMQ; use to: legacy", r.Method, kind)
		case r.Shadow:
			p.At(mp, "%s is %s; only the calls of unary methods can be shadowed as events", r.Method, kind)
		}
	}
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
		if r.Shadow {
			p.Once(yamlfile.Field(path, "shadow"), "only a route with to: legacy can shadow; a broker route publishes every call already")
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
