package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/figway/figway/auth"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/ratelimit"
)

const jwtOK = "auth: {jwt: {issuer: https://id.example.com/, audiences: [orders-api], jwks: {url: https://id.example.com/jwks.json}}}"

func TestParseEdgeRules(t *testing.T) {
	dir := apiDir(t)
	os.WriteFile(filepath.Join(dir, "keys.json"), []byte(`{"keys": []}`), 0o600)
	tests := []struct {
		name string
		file string
		want []string // one substring per problem, in order; nil: valid
	}{
		{"auth", route("routing_key: k, " + jwtOK), nil},
		{"auth on legacy", route("to: legacy, " + jwtOK), nil},
		{"auth full", route(`routing_key: k, auth: {jwt: {issuer: i, audiences: [a, b], jwks: {file: keys.json, refresh: 1m},
			algorithms: [RS256, EdDSA], clock_skew: 10s, claims_to_headers: {sub: X-User-Id, tenant: x-tenant-id}, forward_token: true}}`), nil},
		{"auth without jwt", route("routing_key: k, auth: {}"), []string{"routes[0].auth.jwt (line 5): required"}},
		{"jwt missing keys", route("routing_key: k, auth: {jwt: {}}"), []string{
			"routes[0].auth.jwt.jwks (line 5): required", "routes[0].auth.jwt.issuer (line 5): required", "routes[0].auth.jwt.audiences (line 5): required"}},
		{"jwks both", route("routing_key: k, auth: {jwt: {issuer: i, audiences: [a], jwks: {url: https://x/, file: keys.json}}}"), []string{
			"routes[0].auth.jwt.jwks (line 5): want exactly one of url and file"}},
		{"jwks bad url", route("routing_key: k, auth: {jwt: {issuer: i, audiences: [a], jwks: {url: ftp://x/}}}"), []string{
			"routes[0].auth.jwt.jwks.url (line 5): want an absolute http:// or https:// URL"}},
		{"jwks missing file", route("routing_key: k, auth: {jwt: {issuer: i, audiences: [a], jwks: {file: nope.json}}}"), []string{
			"routes[0].auth.jwt.jwks.file (line 5): stat"}},
		{"HS256", route("routing_key: k, auth: {jwt: {issuer: i, audiences: [a], jwks: {url: https://x/}, algorithms: [HS256, none]}}"), []string{
			`routes[0].auth.jwt.algorithms[0] (line 5): "HS256" is not accepted`, `routes[0].auth.jwt.algorithms[1] (line 5): "none" is not accepted`}},
		{"skew too long", route("routing_key: k, auth: {jwt: {issuer: i, audiences: [a], jwks: {url: https://x/}, clock_skew: 1h}}"), []string{
			"routes[0].auth.jwt.clock_skew (line 5): 1h0m0s is over 5m0s"}},
		{"claim to bad headers", route("routing_key: k, auth: {jwt: {issuer: i, audiences: [a], jwks: {url: https://x/}, claims_to_headers: {sub: authorization, a: grpc-x, b: x-u, c: x-u}}}"), []string{
			"routes[0].auth.jwt.claims_to_headers.sub (line 5): the token travels as authorization",
			`routes[0].auth.jwt.claims_to_headers.a (line 5): "grpc-x" is reserved`,
			`routes[0].auth.jwt.claims_to_headers.c (line 5): header "x-u" is claim "b"'s already`}},
		{"forwarded token without forward_token", route("routing_key: k, forward_headers: [authorization], " + jwtOK), []string{
			"routes[0].forward_headers (line 5): authorization is the caller's token"}},
		{"auth not a mapping", route("routing_key: k, auth: on"), []string{`routes[0].auth (line 5): want a mapping {jwt: {...}}, or "off"`}},
		{"rate_limit", route("routing_key: k, rate_limit: {per: X-User-Id, rate: 100/s, burst: 200, max_keys: 1000}"), nil},
		{"rate_limit per minute", route("routing_key: k, rate_limit: {per: client_ip, rate: 600/m}"), nil},
		{"rate_limit by claim", route("routing_key: k, rate_limit: {per: 'claim:sub', rate: 5/s}, " + jwtOK), nil},
		{"rate_limit by claim without auth", route("routing_key: k, rate_limit: {per: 'claim:sub', rate: 5/s}"), []string{
			"routes[0].rate_limit (line 5): per: claim:sub needs auth on the route"}},
		{"rate_limit bad", route("routing_key: k, rate_limit: {rate: 100, burst: 0, max_keys: 20000000}"), []string{
			"routes[0].rate_limit.per (line 5): required",
			`routes[0].rate_limit.rate (line 5): invalid rate "100"`,
			"routes[0].rate_limit.burst (line 5): must be at least 1",
			"routes[0].rate_limit.max_keys (line 5): must be at most 10000000"}},
		{"rate_limit bad header", route("routing_key: k, rate_limit: {per: connection, rate: 1/s}"), []string{
			`routes[0].rate_limit.per (line 5): "connection" is a hop-by-hop header`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.file), dir)
			checkProblems(t, "Parse("+quote(tt.file)+")", err, tt.want)
		})
	}
}

func TestEdgeDefaults(t *testing.T) {
	dir := apiDir(t)
	c, err := Parse([]byte(base+"defaults: {"+jwtOK+", rate_limit: {per: x-user-id, rate: 10/s}}\nroutes:\n"+
		"  - {method: "+get+", routing_key: k}\n"+
		"  - {method: acme.v1.OrderService/ListOrders, routing_key: l, auth: off, rate_limit: off}\n"+
		"  - {method: acme.v1.OrderService/PlaceOrder, routing_key: p, rate_limit: {per: client_ip, rate: 1/s}}\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		auth bool
		rl   *RateLimit
	}{
		{true, &RateLimit{Per: "x-user-id", Settings: ratelimit.Settings{Rate: 10}}},
		{false, nil},
		{true, &RateLimit{Per: gateway.RateLimitClientIP, Settings: ratelimit.Settings{Rate: 1}}},
	}
	for i, w := range want {
		r := c.Routes[i]
		if (r.Auth != nil) != w.auth {
			t.Errorf("routes[%d].Auth = %v; want set: %v", i, r.Auth, w.auth)
		}
		if (r.RateLimit == nil) != (w.rl == nil) || r.RateLimit != nil && *r.RateLimit != *w.rl {
			t.Errorf("routes[%d].RateLimit = %+v; want %+v", i, r.RateLimit, w.rl)
		}
	}
	if got := c.JWKSources(); len(got) != 1 || got[0] != (auth.JWKS{URL: "https://id.example.com/jwks.json"}) {
		t.Errorf("JWKSources() = %v; want the one URL", got)
	}
	specs := c.GatewayRoutes()
	if specs[0].Auth == nil || specs[0].Auth.Verifier == nil || specs[1].Auth != nil || specs[0].RateLimit == nil {
		t.Errorf("GatewayRoutes() auth/rate_limit = %+v %+v; want them translated", specs[0].Auth, specs[1].Auth)
	}
}
