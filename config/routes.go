package config

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

var routeKeys = []string{
	"method", "to", "exchange", "routing_key", "pattern", "timeout", "encoding",
	"fallback", "shadow", "max_in_flight", "breaker", "forward_headers", "http",
	"retry", "weight", "sticky_by", "compare", "ignore_fields", "wire", "async",
	"pin_by", "response_headers", "ignore_metadata", "queue",
}

func (d *decoder) routes(v *value, path string) []Route {
	items, _ := d.items(v, path)
	var routes []Route
	for i, it := range items {
		routes = append(routes, d.route(it, index(path, i)))
	}
	return routes
}

func (d *decoder) route(v *value, path string) Route {
	f := d.object(v, path, routeKeys...)
	shadow, percent := d.shadow(f["shadow"], field(path, "shadow"))
	return Route{
		Method:          d.str(f["method"], field(path, "method")),
		To:              enum(d, f["to"], field(path, "to"), TargetBroker, TargetLegacy),
		Exchange:        d.str(f["exchange"], field(path, "exchange")),
		RoutingKey:      d.str(f["routing_key"], field(path, "routing_key")),
		Queue:           d.str(f["queue"], field(path, "queue")),
		Pattern:         enum(d, f["pattern"], field(path, "pattern"), PatternRPC, PatternEvent),
		Timeout:         d.duration(f["timeout"], field(path, "timeout")),
		Encoding:        enum(d, f["encoding"], field(path, "encoding"), EncodingProtobuf, EncodingJSON),
		Fallback:        enum(d, f["fallback"], field(path, "fallback"), TargetLegacy),
		Shadow:          shadow,
		ShadowPercent:   percent,
		MaxInFlight:     d.positive(f["max_in_flight"], field(path, "max_in_flight"), maxInFlight, ""),
		Breaker:         d.breaker(f["breaker"], field(path, "breaker")),
		ForwardHeaders:  d.headers(f["forward_headers"], field(path, "forward_headers")),
		HTTP:            d.httpRule(f["http"], field(path, "http")),
		Retry:           enum(d, f["retry"], field(path, "retry"), RetryIdempotent),
		Weight:          d.percent(f["weight"], field(path, "weight"), "calls sent to the broker"),
		StickyBy:        strings.ToLower(d.str(f["sticky_by"], field(path, "sticky_by"))),
		Compare:         d.boolean(f["compare"], field(path, "compare")),
		Wire:            d.wire(f["wire"], field(path, "wire")),
		Async:           d.async(f["async"], field(path, "async")),
		IgnoreFields:    d.fieldPaths(f["ignore_fields"], field(path, "ignore_fields")),
		PinBy:           d.header(f["pin_by"], field(path, "pin_by")),
		ResponseHeaders: d.responseHeaders(f["response_headers"], field(path, "response_headers")),
		IgnoreMetadata:  d.metadataKeys(f["ignore_metadata"], field(path, "ignore_metadata")),
	}
}

// validateRoutes checks what involves more than one value of a route, or
// the descriptors; it runs after defaults and fills in each Route.Desc.
func validateRoutes(c *Config, p *problems, broken map[string]bool) {
	seen := map[string]string{} // method → path of its route
	for i := range c.Routes {
		r, path := &c.Routes[i], index("routes", i)
		if broken[path] {
			continue
		}
		if resolveMethod(c.Files, r, path, p) {
			if first, dup := seen[r.Method]; dup {
				p.at(field(path, "method"), "%s already has a route, %s; a method may have one only", r.Method, first)
			} else {
				seen[r.Method] = path
			}
		}
		validateTarget(c, r, path, p)
		validateMigration(c, r, path, p)
		if r.HTTP != nil && r.Desc != nil {
			validateHTTPRule(r.HTTP, r.Desc, field(path, "http"), p)
		}
	}
}

// resolveMethod checks the method's name, finds it in files (nil when the
// descriptors failed to load) and sets r.Desc. It reports whether the name
// is well-formed.
func resolveMethod(files *protoregistry.Files, r *Route, path string, p *problems) bool {
	mp := field(path, "method")
	if r.Method == "" {
		p.once(mp, "required: the full gRPC method name, such as orders.v1.OrderService/GetOrder")
		return false
	}
	svc, name, ok := strings.Cut(r.Method, "/")
	if !ok || !protoreflect.FullName(svc).IsValid() || !protoreflect.Name(name).IsValid() {
		hint := ""
		if strings.HasPrefix(r.Method, "/") {
			hint = " (without the leading slash)"
		}
		p.at(mp, "%q is not a method name; want package.Service/Method%s, such as orders.v1.OrderService/GetOrder", r.Method, hint)
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
		if s := suggest(r.Method, methodNames(files)); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		p.at(mp, "%s", msg)
		return true
	}
	r.Desc = md
	if kind := streaming(md); kind != "" {
		switch {
		case r.To == TargetBroker:
			p.at(mp, "%s is %s; only unary methods can be bridged to RabbitMQ; use to: legacy", r.Method, kind)
		case r.Shadow:
			p.at(mp, "%s is %s; only the calls of unary methods can be shadowed as events", r.Method, kind)
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
func validateTarget(c *Config, r *Route, path string, p *problems) {
	if p.reported[field(path, "to")] || p.reported[field(path, "shadow")] {
		return // the checks below depend on them
	}
	hasLegacy := c.Legacy.GRPC != "" || c.Legacy.HTTP != ""
	if r.Fallback == TargetLegacy && !hasLegacy && r.To != TargetLegacy {
		p.once(field(path, "fallback"), "fallback: legacy needs a legacy upstream; set legacy.grpc or legacy.http")
	}
	switch r.To {
	case TargetBroker:
		if r.RoutingKey == "" {
			p.once(field(path, "routing_key"), "required when to is broker: the routing key to publish with (on the default exchange, the name of the queue)")
		}
		if r.Shadow {
			p.once(field(path, "shadow"), "only a route with to: legacy can shadow; a broker route publishes every call already")
		}
	case TargetLegacy:
		if !hasLegacy {
			p.once(field(path, "to"), "to: legacy needs a legacy upstream; set legacy.grpc or legacy.http")
		}
		if r.Fallback != "" {
			p.once(field(path, "fallback"), "a route with to: legacy has nothing to fall back from; fallback is for broker routes")
		}
		if r.Shadow {
			if r.RoutingKey == "" {
				p.once(field(path, "routing_key"), "required with shadow: true: the routing key of the mirrored events")
			}
			if r.Compare && r.Pattern == PatternEvent {
				p.once(field(path, "pattern"), "a compared shadow copy waits for its reply: leave pattern out or set it to rpc")
			} else if !r.Compare && r.Pattern == PatternRPC {
				p.once(field(path, "pattern"), "a shadow copy is an event that nobody waits for unless compare is set; leave pattern out or set it to event")
			}
			return
		}
		unused := "only for routes that publish: set to: broker, or shadow: true to mirror the calls as events"
		if r.Exchange != "" {
			p.once(field(path, "exchange"), "%s", unused)
		}
		if r.RoutingKey != "" {
			p.once(field(path, "routing_key"), "%s", unused)
		}
		if r.Queue != "" {
			p.once(field(path, "queue"), "%s", unused)
		}
		if r.Pattern != "" {
			p.once(field(path, "pattern"), "%s", unused)
		}
		if r.Encoding != "" {
			p.once(field(path, "encoding"), "%s", unused)
		}
		if r.Wire != (Wire{}) {
			p.once(field(path, "wire"), "%s", unused)
		}
	}
}
