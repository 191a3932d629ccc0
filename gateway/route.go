package gateway

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/figway/figway/ratelimit"
	"github.com/figway/figway/resilience"
	"github.com/figway/figway/wire"
)

// Route is where the calls of one method go: its [RouteSpec] and what the
// gateway builds from it (descriptors, bulkhead, breaker). A Route is
// immutable once built.
type Route struct {
	RouteSpec

	Input  protoreflect.MessageDescriptor
	Output protoreflect.MessageDescriptor

	ignore      map[string]bool // IgnoreFields
	ignoreMD    map[string]bool // IgnoreMetadata
	contentType string
	// types resolves the messages of the route's table (Any in JSON): a
	// call keeps its route's, across a reload.
	types    *dynamicpb.Types
	bulkhead *resilience.Bulkhead
	breaker  *resilience.Breaker
	// answered is when a reply to one of the route's calls last came
	// back, in Unix nanoseconds: proof that its queues have a consumer,
	// whatever a count says (see Gateway.idle). Kept across reloads.
	answered *atomic.Int64
	limiter  *ratelimit.Limiter // nil without RateLimit
}

// cloudEvents reports whether the route's messages carry the
// cloudEvents:* headers: events do, rpc requests when the route asks.
func (r *Route) cloudEvents() bool { return r.CloudEvents || r.Pattern == PatternEvent }

// BreakerState returns what the route's circuit breaker is doing now:
// closed (calls flow), open (calls refused) or half-open (probing).
func (r *Route) BreakerState() resilience.BreakerState { return r.breaker.State() }

// ContentType returns the content type of the route's messages on the wire.
func (r *Route) ContentType() string { return r.contentType }

// InFlight returns the number of calls on the route now.
func (r *Route) InFlight() int { return r.bulkhead.InFlight() }

// noteAnswered records that a reply to a call of r came back at now. Calls
// close together store once: the time matters to within answerTrust.
func (r *Route) noteAnswered(now time.Time) {
	if ns := now.UnixNano(); ns-r.answered.Load() > int64(10*time.Millisecond) {
		r.answered.Store(ns)
	}
}

// answeredSince reports whether a reply to a call of r came back after t.
func (r *Route) answeredSince(t time.Time) bool { return r.answered.Load() > t.UnixNano() }

// Table maps full method names to routes.
type Table struct {
	routes map[string]*Route
	order  []*Route
	files  *protoregistry.Files
	// breakers logs the transitions of the routes' breakers.
	breakers *breakerLog
	types    *dynamicpb.Types
}

// NewTable builds the route table of specs, whose methods are resolved in
// files (config.Config.Table translates a routes file). When prev is not nil, a route whose method and in-flight limit are
// unchanged keeps its bulkhead, so calls in flight across a reload still
// count against the same limit; one whose breaker settings are unchanged
// keeps its breaker, state and counts included.
func NewTable(files *protoregistry.Files, specs []RouteSpec, prev *Table) (*Table, error) {
	t := &Table{
		routes:   make(map[string]*Route, len(specs)),
		files:    files,
		breakers: new(breakerLog),
		types:    dynamicpb.NewTypes(files),
	}
	if prev != nil {
		t.breakers = prev.breakers // kept breakers report through it
	}
	for i := range specs {
		rc := &specs[i]
		if rc.Desc == nil {
			return nil, fmt.Errorf("routes[%d]: method %s not resolved", i, rc.Method)
		}
		r := &Route{RouteSpec: *rc, Input: rc.Desc.Input(), Output: rc.Desc.Output()}
		// The slices are the route's own: a spec may be built again.
		r.Forward = forwarded(rc)
		r.ResponseHeaders = slices.Clone(rc.ResponseHeaders)
		r.IgnoreFields = slices.Clone(rc.IgnoreFields)
		r.IgnoreMetadata = slices.Clone(rc.IgnoreMetadata)
		r.Queues = slices.Clone(rc.Queues)
		r.ForwardLimits = rc.ForwardLimits.orDefaults()
		r.ignore = keySet(rc.IgnoreFields)
		r.ignoreMD = keySet(rc.IgnoreMetadata)
		r.types = t.types
		r.contentType = wire.ContentTypeProtobuf
		if r.Encoding == EncodingJSON {
			r.contentType = wire.ContentTypeJSON
		}
		old := prev.Lookup(r.Method)
		if old != nil && old.bulkhead.Limit() == rc.MaxInFlight {
			r.bulkhead = old.bulkhead
		} else {
			r.bulkhead = resilience.NewBulkhead(rc.MaxInFlight)
		}
		if old != nil {
			r.answered = old.answered
		} else {
			r.answered = new(atomic.Int64)
		}
		if old != nil && old.Breaker == rc.Breaker {
			r.breaker = old.breaker
		} else {
			r.breaker = newBreaker(r.Method, rc.Breaker, t.breakers)
		}
		r.limiter = limiter(rc.RateLimit, old)
		t.routes[r.Method] = r
		t.order = append(t.order, r)
	}
	return t, nil
}

// Lookup returns the route of a full method name ("pkg.Service/Method",
// with or without a leading slash), or nil. A nil Table has no routes.
func (t *Table) Lookup(method string) *Route {
	if t == nil {
		return nil
	}
	return t.routes[strings.TrimPrefix(method, "/")]
}

// Routes returns the routes in the order of the routes file.
func (t *Table) Routes() []*Route {
	if t == nil {
		return nil
	}
	return t.order
}

// Queues returns the queues of the table's routes that publish, each once.
func (t *Table) Queues() []string {
	var out []string
	for _, r := range t.Routes() {
		if !r.Publishes() {
			continue
		}
		for _, q := range r.Queues {
			if !slices.Contains(out, q) {
				out = append(out, q)
			}
		}
	}
	return out
}

// MaxInFlight returns the route's in-flight limit.
func (r *Route) MaxInFlight() int { return r.bulkhead.Limit() }

// Files returns the descriptors the table was built from.
func (t *Table) Files() *protoregistry.Files { return t.files }

// Types resolves the message and extension types of the descriptors (for
// google.protobuf.Any in JSON).
func (t *Table) Types() *dynamicpb.Types { return t.types }

// forwarded is what a route's calls forward to the worker: its forward
// list, the headers its claims become, and the token if it forwards it.
func forwarded(rc *RouteSpec) []string {
	fw := slices.Clone(rc.Forward)
	if a := rc.Auth; a != nil {
		for _, h := range slices.Sorted(maps.Values(a.ClaimsToHeaders)) {
			if !slices.Contains(fw, h) {
				fw = append(fw, h)
			}
		}
		if a.ForwardToken && !slices.Contains(fw, "authorization") {
			fw = append(fw, "authorization")
		}
	}
	return fw
}

// limiter returns the rate limiter of rl: old's when its route had the
// same limit (a reload keeps the callers' buckets), else a new one.
func limiter(rl *RateLimit, old *Route) *ratelimit.Limiter {
	if rl == nil {
		return nil
	}
	if old != nil && old.limiter != nil && old.RateLimit != nil && *old.RateLimit == *rl {
		return old.limiter
	}
	return ratelimit.New(rl.Settings)
}

func keySet(keys []string) map[string]bool {
	if len(keys) == 0 {
		return nil
	}
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// Canary reports whether the route splits its calls between the broker and
// legacy by weight, fixed or ramped.
func (r *Route) Canary() bool { return r.Weight != nil || r.Ramp != nil }

// FallsBack reports whether the route sends to legacy the calls its broker
// path refuses without publishing them.
func (r *Route) FallsBack() bool { return r.Fallback == TargetLegacy }

// Pins reports whether a call of the route may pin itself to a side with
// the route's pin_by header: a broker route with a PinBy.
func (r *Route) Pins() bool { return r.PinBy != "" && r.To == TargetBroker }

// MayGoLegacy reports whether the gateway may answer a call of the route
// from legacy: a canary, a fallback, a shadow or a pin.
func (r *Route) MayGoLegacy() bool { return r.Canary() || r.FallsBack() || r.Shadow || r.PinBy != "" }
