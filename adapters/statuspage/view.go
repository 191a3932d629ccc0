package statuspage

import (
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/metrics"
)

// view is what the template renders.
type view struct {
	Now         time.Time
	Version     string
	Window      string // "1m0s"
	Every       int    // refresh period, milliseconds
	Exposed     bool
	Broker      []Connection
	Config      Config
	Rows        []row
	Unrouted    row // calls of methods without a route, together
	HasUnrouted bool
	Totals      struct{ Broker, Legacy float64 }
	Ramps       []Ramp
}

// row is one method.
type row struct {
	Service, Method, Full string
	Routed                bool
	Streams               bool   // a server-streaming method
	Stage                 string // GoesTo's words
	Kind                  string // legacy, shadow, canary, broker: the stage's colour
	Fallback              bool
	Weight                int // canary: percent to the broker

	Calls            float64 // answered in the window
	Broker, Legacy   float64 // of them, by side
	Rate             float64 // calls per second
	Errors4, Errors5 float64 // shares of the calls, 0..1
	P50, P99         float64 // seconds; NaN without calls
	// Slowest is the slowest sampled call of the window, with its trace
	// id, when tracing is on; nil otherwise.
	Slowest *slowCall

	Breaker        string // closed, half_open, open
	BreakerChanged time.Time
	InFlight, Max  int
	Consumers      string // "" when figway does not count them

	// Edge checks: whether the route has auth, rate_limit, and the calls
	// each refused in the window.
	Checked, Auth, Limited   bool
	AuthRefused, RateLimited float64

	Shadow         bool
	Compared       float64 // shadow replies compared in the window
	MismatchRate   float64 // 0..1
	RecentMismatch []string

	Chart chart
}

// view builds the page's view at now.
func (p *Page) view(now time.Time) *view {
	hist, fresh := p.history(now)
	v := &view{
		Now: now, Version: p.o.Version, Window: shortDuration(p.o.Window),
		Every: int(p.o.Every / time.Millisecond), Exposed: p.o.Exposed,
	}
	if p.o.Broker != nil {
		v.Broker = p.o.Broker()
	}
	if p.o.Config != nil {
		v.Config = p.o.Config()
	}
	v.Ramps = p.ramps()
	var start *sample
	if len(hist) > 0 {
		start = hist[0]
	}
	points := append(hist, fresh)
	t := p.o.Table()
	for _, m := range methods(t) {
		r := row{Full: m, Breaker: "closed"}
		r.Service, r.Method, _ = strings.Cut(m, "/")
		if i := strings.LastIndexByte(r.Service, '.'); i >= 0 {
			r.Service = r.Service[i+1:]
		}
		r.Streams = streamsServer(t, m)
		if rt := t.Lookup(m); rt != nil {
			p.routeRow(&r, rt, t)
		} else {
			r.Stage, r.Kind = "legacy", "legacy"
		}
		d := between(start, fresh, m)
		fill(&r, d)
		if rs := fresh.routes[m]; rs != nil {
			p.current(&r, rs, now)
		}
		r.Broker, r.Legacy = sides(t.Lookup(m), d)
		v.Totals.Broker += r.Broker
		v.Totals.Legacy += r.Legacy
		r.Chart = chartOf(points, m)
		v.Rows = append(v.Rows, r)
	}
	if d := between(start, fresh, metrics.Unrouted); d.calls() > 0 {
		v.HasUnrouted = true
		v.Unrouted = row{Method: "other methods", Stage: "legacy", Kind: "legacy"}
		fill(&v.Unrouted, d)
		v.Unrouted.Legacy = v.Unrouted.Calls
		v.Totals.Legacy += v.Unrouted.Calls
		v.Unrouted.Chart = chartOf(points, metrics.Unrouted)
	}
	return v
}

// current fills r's figures of now from rs, the latest sample of its
// route: in flight and its bound, the breaker, the consumers, and the
// slowest call if it is recent.
func (p *Page) current(r *row, rs *routeSample, now time.Time) {
	r.InFlight, r.Max = int(rs.inFlight), int(rs.maxInFlight)
	if rs.breaker != "" {
		r.Breaker = rs.breaker
	}
	if rs.hasConsumers {
		r.Consumers = strconv.Itoa(int(rs.consumers))
	}
	if e := rs.slowest; e.traceID != "" && now.Sub(e.at) <= p.o.Window {
		r.Slowest = &slowCall{Seconds: e.seconds, TraceID: e.traceID}
	}
}

// slowCall is a route's slowest recent sampled call.
type slowCall struct {
	Seconds float64
	TraceID string
}

// routeRow fills what the route itself says.
func (p *Page) routeRow(r *row, rt *gateway.Route, t *gateway.Table) {
	r.Routed = true
	r.Stage = rt.GoesTo()
	r.Fallback = rt.FallsBack()
	switch {
	case rt.Ramp != nil: // a canary whose weight moves; its legacy side may be shadowed
		r.Kind, r.Weight, r.Shadow = "canary", p.rampWeight(rt), rt.Shadow
	case rt.Shadow:
		r.Kind, r.Shadow = "shadow", true
	case rt.To == gateway.TargetLegacy:
		r.Kind = "legacy"
	case rt.Weight != nil:
		r.Kind, r.Weight = "canary", *rt.Weight
	default:
		r.Kind = "broker"
	}
	r.BreakerChanged = t.BreakerChanged(rt.Method)
	r.Auth, r.Limited = rt.Auth != nil, rt.RateLimit != nil
	r.Checked = r.Auth || r.Limited
	if p.o.Migration != nil && rt.Shadow {
		// The same fields differing again read as one line, with a count.
		var order []string
		n := map[string]int{}
		for _, paths := range p.o.Migration(rt.Method).RecentMismatches {
			k := strings.Join(paths, ", ")
			if n[k] == 0 {
				order = append(order, k)
			}
			n[k]++
		}
		for _, k := range order {
			if n[k] > 1 {
				k = fmt.Sprintf("%s ×%d", k, n[k])
			}
			r.RecentMismatch = append(r.RecentMismatch, k)
		}
	}
}

// fill sets the numbers of a window.
func fill(r *row, d delta) {
	r.Calls = d.calls()
	if d.seconds > 0 {
		r.Rate = r.Calls / d.seconds
	}
	for code, n := range d.codes {
		switch class(code) {
		case 4:
			r.Errors4 += n
		case 5:
			r.Errors5 += n
		}
	}
	if r.Calls > 0 {
		r.Errors4 /= r.Calls
		r.Errors5 /= r.Calls
	}
	r.P50, r.P99 = d.quantile(.5), d.quantile(.99)
	r.AuthRefused, r.RateLimited = d.authRefused, d.rateLimited
	r.Compared = d.matched + d.mismatched
	if r.Compared > 0 {
		r.MismatchRate = d.mismatched / r.Compared
	}
}

// sides splits a window's calls by the side that answered them: a canary's
// by its counters, a fallback's by the calls that fell back, the others by
// where the route sends them.
func sides(rt *gateway.Route, d delta) (broker, legacy float64) {
	calls := d.calls()
	switch {
	case rt == nil || rt.To == gateway.TargetLegacy:
		return 0, calls
	case rt.Canary():
		broker, legacy = d.canary["broker"], d.canary["legacy"]
	default:
		broker = calls
	}
	if rt.FallsBack() {
		broker = math.Max(0, broker-d.fallbacks)
		legacy += d.fallbacks
	}
	return broker, legacy
}

// class is the HTTP status class of a figway_requests_total code: an HTTP
// status, or a gRPC code name mapped as the REST ingress maps it.
func class(code string) int {
	if n, err := strconv.Atoi(code); err == nil {
		return n / 100
	}
	c, ok := grpcCodes[code]
	if !ok {
		return 5
	}
	return runtime.HTTPStatusFromCode(c) / 100
}

var grpcCodes = func() map[string]codes.Code {
	m := map[string]codes.Code{}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		m[c.String()] = c
	}
	return m
}()

// methods returns every method of the table's descriptors and of its
// routes, sorted by service then declaration.
// streamsServer reports whether method is server-streaming, by the
// table's descriptors.
func streamsServer(t *gateway.Table, method string) bool {
	svc, name, _ := strings.Cut(method, "/")
	if t.Files() == nil {
		return false
	}
	d, err := t.Files().FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return false
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return false
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	return md != nil && md.IsStreamingServer() && !md.IsStreamingClient()
}

func methods(t *gateway.Table) []string {
	var out []string
	seen := map[string]bool{}
	if files := t.Files(); files != nil {
		files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
			if strings.HasPrefix(string(fd.Package()), "google.") {
				return true // the well-known and API types, not the gateway's API
			}
			svcs := fd.Services()
			for i := range svcs.Len() {
				ms := svcs.Get(i).Methods()
				for j := range ms.Len() {
					name := string(svcs.Get(i).FullName()) + "/" + string(ms.Get(j).Name())
					if !seen[name] {
						seen[name] = true
						out = append(out, name)
					}
				}
			}
			return true
		})
	}
	slices.Sort(out)
	for _, r := range t.Routes() {
		if !seen[r.Method] {
			out = append(out, r.Method)
		}
	}
	return out
}

// shortDuration writes 1m0s as 1m and 30s as 30s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return strings.TrimSuffix(s, "h0m")
}

// funcs are the template's formatting helpers.
var funcs = template.FuncMap{
	"ms": func(s float64) string {
		switch {
		case math.IsNaN(s):
			return "–"
		case s < .001:
			return fmt.Sprintf("%.2f ms", s*1000)
		case s < 1:
			return fmt.Sprintf("%.1f ms", s*1000)
		}
		return fmt.Sprintf("%.2f s", s)
	},
	"rate": func(f float64) string {
		switch {
		case f == 0:
			return "0"
		case f < 10:
			return strconv.FormatFloat(f, 'f', 2, 64)
		}
		return strconv.FormatFloat(f, 'f', 0, 64)
	},
	"count": func(f float64) string { return strconv.FormatFloat(math.Round(f), 'f', 0, 64) },
	"pct": func(f float64) string {
		switch {
		case f == 0:
			return "0%"
		case f < .001:
			return "<0.1%"
		}
		return strconv.FormatFloat(f*100, 'f', 1, 64) + "%"
	},
	"ago": func(t, now time.Time) string {
		if t.IsZero() {
			return "since start"
		}
		d := now.Sub(t).Round(time.Second)
		if d < time.Second {
			return "just now"
		}
		return d.String() + " ago"
	},
	"clock":  func(t time.Time) string { return t.UTC().Format("15:04:05 UTC") },
	"status": http.StatusText,
	"state":  func(s string) string { return strings.ReplaceAll(s, "_", "-") },
	"add":    func(a, b float64) float64 { return a + b },
	"share": func(part, all float64) string {
		if all == 0 {
			return "0"
		}
		return strconv.FormatFloat(100*part/all, 'f', 1, 64)
	},
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
}
