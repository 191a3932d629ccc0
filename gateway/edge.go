package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/figway/figway/ratelimit"
)

// Auth is a route's check of its callers' bearer tokens, before anything
// else of the call (docs/operations.md, "Authentication and rate limits").
type Auth struct {
	// Verifier checks a token and returns its claims.
	Verifier Verifier
	// ClaimsToHeaders maps a claim's name to the lower-case header it
	// becomes, for the worker (as figway-md-<header>) and for legacy. A
	// header of the same name sent by the caller is removed first.
	ClaimsToHeaders map[string]string
	// ForwardToken passes the caller's authorization header on to the
	// worker and to legacy; if false, it is removed.
	ForwardToken bool
}

// Verifier is the port through which the gateway checks a bearer token.
// auth.Verifier implements it.
type Verifier interface {
	// Verify returns the claims of a valid token, or why it is not: an
	// error that may have a method Why() string, the reason label of
	// figway_auth_refused_total ("expired", "audience", …). It may wait
	// for keys, never past ctx.
	Verify(ctx context.Context, token string) (map[string]any, error)
}

// RateLimit is a route's limit per caller: token buckets per key, at most
// MaxKeys keys (ratelimit.Settings), per figway process.
type RateLimit struct {
	ratelimit.Settings
	// Per is what keys a caller: a lower-case header name, "claim:<name>"
	// (a claim of the caller's token), or RateLimitClientIP. A call
	// without it shares one bucket with every other such call.
	Per string
}

// RateLimitClientIP is the RateLimit.Per of a limit per client address.
const RateLimitClientIP = "client_ip"

// Errors of the edge checks. Neither publishes anything, and neither
// counts for a breaker.
var (
	// ErrUnauthenticated: the route has auth and the call has no valid
	// bearer token. It is always wrapped in an *AuthError.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrRateLimited: the caller is over the route's rate_limit. It is
	// always wrapped in a *RateLimitError.
	ErrRateLimited = errors.New("rate limited")
)

// AuthError is a call refused by its route's auth.
type AuthError struct {
	// Reason is figway_auth_refused_total's reason label: "missing" for a
	// call without a bearer token, or the Verifier's.
	Reason string
	Err    error
}

func (e *AuthError) Error() string {
	if e.Err == nil {
		return ErrUnauthenticated.Error() + ": no bearer token"
	}
	return ErrUnauthenticated.Error() + ": " + e.Err.Error()
}

// Unwrap returns ErrUnauthenticated and the verifier's error.
func (e *AuthError) Unwrap() []error { return []error{ErrUnauthenticated, e.Err} }

// Missing reports whether the call had no bearer token at all (RFC 6750:
// the challenge then carries no error code).
func (e *AuthError) Missing() bool { return e.Err == nil }

// RateLimitError is a call refused by its route's rate_limit.
type RateLimitError struct {
	// RetryAfter is how long until the caller's bucket holds a token.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%s: retry after %s", ErrRateLimited, e.RetryAfter.Round(time.Millisecond))
}

// Unwrap returns ErrRateLimited.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, at least
// 1: the value of Retry-After (HTTP) and retry-after (gRPC metadata).
func (e *RateLimitError) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// Caller is what a route's edge checks read of a call.
type Caller struct {
	// Header returns the values of a lower-case header (gRPC metadata or
	// HTTP header), as the caller sent it.
	Header func(key string) []string
	// IP is the client's address, without port (the connection's peer:
	// forwarded-for headers are not trusted).
	IP string
}

// Admission is how a call admitted by its route's edge checks changes
// before it goes on: the ingress removes the headers of Remove, then adds
// those of Add, in the metadata or the HTTP headers that reach the worker
// and legacy.
type Admission struct {
	Remove []string    // lower case
	Add    [][2]string // name (lower case), value
}

// Checked reports whether the route has edge checks (auth or rate_limit).
func (r *Route) Checked() bool { return r.Auth != nil || r.limiter != nil }

// Checked returns the route of method on the table serving now if it has
// edge checks, whatever its target: a passthrough call of such a route is
// checked before it goes to legacy. It returns nil otherwise.
func (g *Gateway) Checked(method string) *Route {
	if r := g.table.Load().Lookup(method); r != nil && r.Checked() {
		return r
	}
	return nil
}

// Admit runs r's edge checks on a call, before anything else of it: the
// bearer token (auth), then the caller's bucket (rate_limit). It returns
// nil, nil for a route without checks. A refused call gets an *AuthError
// or a *RateLimitError, is counted, and must be answered at once: nothing
// is published, no breaker is asked.
func (g *Gateway) Admit(ctx context.Context, r *Route, c Caller) (*Admission, error) {
	if !r.Checked() {
		return nil, nil
	}
	var adm *Admission
	var claims map[string]any
	if r.Auth != nil {
		var err error
		if claims, err = g.authenticate(ctx, r, c); err != nil {
			return nil, err
		}
		adm = admission(r.Auth, claims)
	}
	if r.limiter != nil {
		key := limitKey(r, c, adm, claims)
		if wait, ok := r.limiter.Allow(key, time.Now()); !ok {
			g.edgeStats(r.Method).limited.Add(1)
			return nil, &RateLimitError{RetryAfter: wait}
		}
	}
	return adm, nil
}

// authenticate verifies the call's bearer token and returns its claims.
func (g *Gateway) authenticate(ctx context.Context, r *Route, c Caller) (map[string]any, error) {
	token, ok := bearer(c.Header("authorization"))
	if !ok {
		g.edgeStats(r.Method).refuse("missing")
		return nil, &AuthError{Reason: "missing"}
	}
	claims, err := r.Auth.Verifier.Verify(ctx, token)
	if err != nil {
		reason := "invalid"
		var why interface{ Why() string }
		if errors.As(err, &why) {
			reason = why.Why()
		}
		g.edgeStats(r.Method).refuse(reason)
		return nil, &AuthError{Reason: reason, Err: err}
	}
	return claims, nil
}

// bearer returns the token of the one authorization value "Bearer
// <token>" (the scheme in any case, RFC 6750).
func bearer(vs []string) (string, bool) {
	if len(vs) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(vs[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// admission is what a's claims make of a call's headers.
func admission(a *Auth, claims map[string]any) *Admission {
	adm := &Admission{Remove: slices.Sorted(maps.Values(a.ClaimsToHeaders))}
	if !a.ForwardToken {
		adm.Remove = append(adm.Remove, "authorization")
	}
	for _, claim := range slices.Sorted(maps.Keys(a.ClaimsToHeaders)) {
		for _, v := range claimValues(claims[claim]) {
			adm.Add = append(adm.Add, [2]string{a.ClaimsToHeaders[claim], v})
		}
	}
	return adm
}

// claimValues renders a claim as header values: a string as it is, a
// number or boolean as JSON writes it, each item of a list as one value,
// an object as compact JSON. Values that a header cannot carry (control
// characters) are left out.
func claimValues(v any) []string {
	var out []string
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		out = []string{v}
	case json.Number:
		out = []string{v.String()}
	case bool:
		out = []string{strconv.FormatBool(v)}
	case float64:
		out = []string{strconv.FormatFloat(v, 'f', -1, 64)}
	case []any:
		for _, item := range v {
			if _, nested := item.([]any); !nested {
				out = append(out, claimValues(item)...)
			}
		}
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil
		}
		out = []string{string(b)}
	}
	return slices.DeleteFunc(out, func(s string) bool { return !headerSafe(s) })
}

// headerSafe reports whether s may be a header value: no control
// characters but tab.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// limitKey is the bucket a call takes from. A header set from a claim is
// read from the claim, never from what the caller sent.
func limitKey(r *Route, c Caller, adm *Admission, claims map[string]any) string {
	per := r.RateLimit.Per
	switch {
	case per == RateLimitClientIP:
		return c.IP
	case strings.HasPrefix(per, "claim:"):
		return strings.Join(claimValues(claims[strings.TrimPrefix(per, "claim:")]), ",")
	}
	if adm != nil && slices.Contains(adm.Remove, per) {
		var vs []string
		for _, kv := range adm.Add {
			if kv[0] == per {
				vs = append(vs, kv[1])
			}
		}
		return strings.Join(vs, ",")
	}
	return strings.Join(c.Header(per), ",")
}

// Edge counts the calls a route's edge checks refused (they survive
// reloads).
type Edge struct {
	// Refused counts the calls refused by auth, by reason.
	Refused map[string]uint64
	// Limited counts the calls refused by rate_limit.
	Limited uint64
}

type edgeStats struct {
	mu      sync.Mutex
	refused map[string]uint64
	limited atomic.Uint64
}

func (s *edgeStats) refuse(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused == nil {
		s.refused = map[string]uint64{}
	}
	s.refused[reason]++
}

// Edge returns the counts of method's edge checks.
func (g *Gateway) Edge(method string) Edge {
	s := g.edgeStats(method)
	s.mu.Lock()
	defer s.mu.Unlock()
	return Edge{Refused: maps.Clone(s.refused), Limited: s.limited.Load()}
}

func (g *Gateway) edgeStats(method string) *edgeStats {
	if s, ok := g.edge.Load(method); ok {
		return s.(*edgeStats)
	}
	s, _ := g.edge.LoadOrStore(method, new(edgeStats))
	return s.(*edgeStats)
}

// RateLimitKeys returns the callers the route's rate limiter holds a
// bucket for now (0 without rate_limit).
func (r *Route) RateLimitKeys() int {
	if r.limiter == nil {
		return 0
	}
	return r.limiter.Stats().Keys
}
