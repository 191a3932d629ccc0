package httpin

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/rs/cors"
)

// CORS is the cross-origin policy of the REST ingress (docs/rest.md#cors).
type CORS struct {
	// AllowOrigins are the origins allowed to call, each with at most
	// one "*", or "*" for any.
	AllowOrigins []string
	// AllowHeaders are the request headers allowed beyond the
	// CORS-safelisted ones; "*" allows any.
	AllowHeaders []string
	// ExposeHeaders are the response headers pages may read beyond the
	// CORS-safelisted ones.
	ExposeHeaders []string
	// AllowCredentials allows cookies and HTTP authentication.
	AllowCredentials bool
	// MaxAge is how long a preflight answer may be cached; 0 sends none.
	MaxAge time.Duration
}

// anyMethods are the methods a preflight for a path that no binding serves
// is answered with: the passthrough's, which figway cannot know.
var anyMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// corsPolicy applies a CORS policy with github.com/rs/cors: one handler
// per set of allowed methods, since a preflight is answered with the
// methods of its path's bindings.
type corsPolicy struct {
	cfg      CORS
	mu       sync.Mutex
	byMethod map[string]*cors.Cors // by joined method list
}

func newCORSPolicy(c CORS) *corsPolicy {
	return &corsPolicy{cfg: c, byMethod: map[string]*cors.Cors{}}
}

// handler returns the rs/cors handler allowing methods.
func (p *corsPolicy) handler(methods []string) *cors.Cors {
	key := strings.Join(methods, ",")
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.byMethod[key]; ok {
		return c
	}
	maxAge := int(p.cfg.MaxAge / time.Second)
	c := cors.New(cors.Options{
		AllowedOrigins:   p.cfg.AllowOrigins,
		AllowedMethods:   methods,
		AllowedHeaders:   p.cfg.AllowHeaders,
		ExposedHeaders:   p.cfg.ExposeHeaders,
		AllowCredentials: p.cfg.AllowCredentials,
		MaxAge:           maxAge,
	})
	p.byMethod[key] = c
	return c
}

// wrap applies the policy to every answer of next: figway answers
// preflights itself — for a path that bindings serve, with their methods
// (from methods) — and sets the CORS headers of every other answer,
// replacing those that the passthrough's upstream may have set.
func (p *corsPolicy) wrap(next http.Handler, methods func(*http.Request) []string) http.Handler {
	actual := p.handler(anyMethods).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(newCORSGuard(w), r)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			ms := methods(r)
			if len(ms) == 0 {
				ms = anyMethods
			}
			p.handler(ms).HandlerFunc(w, r)
			return
		}
		actual.ServeHTTP(w, r)
	})
}

// corsGuard keeps the CORS headers that figway's policy set on an answer
// and drops those that the handler after it set (a legacy service's, through
// the passthrough): never two Access-Control-Allow-Origin, and none for an
// origin the policy refuses.
type corsGuard struct {
	http.ResponseWriter
	own   http.Header // figway's Access-Control-* headers
	wrote bool
}

func newCORSGuard(w http.ResponseWriter) *corsGuard {
	g := &corsGuard{ResponseWriter: w, own: http.Header{}}
	for k, vs := range w.Header() {
		if isCORSHeader(k) {
			g.own[k] = slices.Clone(vs)
		}
	}
	return g
}

func isCORSHeader(k string) bool { return strings.HasPrefix(k, "Access-Control-") }

func (g *corsGuard) fix() {
	if g.wrote {
		return
	}
	g.wrote = true
	h := g.ResponseWriter.Header()
	for k := range h {
		if isCORSHeader(k) {
			delete(h, k)
		}
	}
	for k, vs := range g.own {
		h[k] = vs
	}
	if vary := h.Values("Vary"); len(vary) > 1 {
		var seen []string
		for _, v := range vary {
			for tok := range strings.SplitSeq(v, ",") {
				if tok = strings.TrimSpace(tok); tok != "" && !slices.ContainsFunc(seen, func(s string) bool { return strings.EqualFold(s, tok) }) {
					seen = append(seen, tok)
				}
			}
		}
		h.Set("Vary", strings.Join(seen, ", "))
	}
}

func (g *corsGuard) WriteHeader(code int) {
	g.fix()
	g.ResponseWriter.WriteHeader(code)
}

func (g *corsGuard) Write(b []byte) (int, error) {
	g.fix()
	return g.ResponseWriter.Write(b)
}

// Flush lets the passthrough stream.
func (g *corsGuard) Flush() {
	g.fix()
	http.NewResponseController(g.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the writer underneath.
func (g *corsGuard) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// probeKey marks a request that only asks whether a binding serves its
// verb and path (see [router.methods]).
type probeKey struct{}

type probe struct{ hit bool }

func probeFrom(ctx context.Context) *probe {
	p, _ := ctx.Value(probeKey{}).(*probe)
	return p
}

// probed answers a CORS preflight's probe (see [router.methods]) instead
// of running f: the probe only asks whether a handler is bound.
func probed(f runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if p := probeFrom(r.Context()); p != nil {
			p.hit = true
			return
		}
		f(w, r, params)
	}
}

// addVerb notes that a handler of the router serves verb.
func (rt *router) addVerb(verb string) {
	if !slices.Contains(rt.verbs, verb) {
		rt.verbs = append(rt.verbs, verb)
	}
}

// methods returns the verbs that the router's bindings serve on the path of
// r, asking its mux once per verb the bindings use.
func (rt *router) methods(r *http.Request) []string {
	var out []string
	for _, verb := range rt.verbs {
		p := &probe{}
		req := (&http.Request{
			Method: verb, URL: &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath},
			Header: http.Header{}, Host: r.Host, RequestURI: r.RequestURI,
		}).WithContext(context.WithValue(r.Context(), probeKey{}, p))
		rt.mux.ServeHTTP(discard{}, req)
		if p.hit {
			out = append(out, verb)
		}
	}
	return out
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
