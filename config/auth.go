package config

import (
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/figway/figway/auth"
	"github.com/figway/figway/config/yamlfile"
	"github.com/figway/figway/gateway"
)

// RateLimit is a route's limit per caller (YAML rate_limit): the
// gateway's own type.
type RateLimit = gateway.RateLimit

// The YAML value that turns off, on one route, the auth or rate_limit of
// defaults.
const edgeOff = "off"

// Bounds of the edge settings.
const (
	maxClockSkew   = 5 * time.Minute
	minJWKSRefresh = time.Second
	maxRateKeys    = 10_000_000
)

// auth decodes auth: {jwt: {...}}, or "off".
func (d *decoder) auth(v *yamlfile.Value, path string) (j *auth.JWT, off bool) {
	if v == nil || v.Kind == yamlfile.Null {
		return nil, false
	}
	if v.Kind == yamlfile.Scalar {
		if s, _ := v.V.(string); s == edgeOff {
			return nil, true
		}
		d.WrongType(v, path, `a mapping {jwt: {...}}, or "off"`)
		return nil, false
	}
	f := d.Fields(v, path, "jwt")
	jp := yamlfile.Field(path, "jwt")
	if f["jwt"] == nil {
		d.P.Once(jp, "required: the JWT check, {issuer, audiences, jwks}")
		return nil, false
	}
	jf := d.Fields(f["jwt"], jp, "issuer", "audiences", "jwks", "algorithms", "clock_skew", "claims_to_headers", "forward_token")
	j = &auth.JWT{
		Issuer:          d.Str(jf["issuer"], yamlfile.Field(jp, "issuer")),
		JWKS:            d.jwks(jf["jwks"], yamlfile.Field(jp, "jwks")),
		ClockSkew:       d.Duration(jf["clock_skew"], yamlfile.Field(jp, "clock_skew")),
		ClaimsToHeaders: d.claimHeaders(jf["claims_to_headers"], yamlfile.Field(jp, "claims_to_headers")),
		ForwardToken:    d.Bool(jf["forward_token"], yamlfile.Field(jp, "forward_token")),
	}
	if j.Issuer == "" {
		d.P.Once(yamlfile.Field(jp, "issuer"), "required: the iss claim every token must carry")
	}
	auds, _ := d.Strs(jf["audiences"], yamlfile.Field(jp, "audiences"))
	for _, a := range auds {
		j.Audiences = append(j.Audiences, a.S)
	}
	if len(j.Audiences) == 0 {
		d.P.Once(yamlfile.Field(jp, "audiences"), "required: the aud values this API accepts, at least one (a token minted for another API of the same issuer must not pass)")
	}
	algs, _ := d.Strs(jf["algorithms"], yamlfile.Field(jp, "algorithms"))
	for _, a := range algs {
		if !slices.Contains(auth.DefaultAlgorithms, a.S) {
			d.P.At(a.Path, "%q is not accepted; want %s (figway verifies with public keys only: no HS*, no none)",
				a.S, yamlfile.OneOf(auth.DefaultAlgorithms...))
			continue
		}
		j.Algorithms = append(j.Algorithms, a.S)
	}
	if j.ClockSkew > maxClockSkew {
		d.P.At(yamlfile.Field(jp, "clock_skew"), "%s is over %s: an expired token would pass for that long", j.ClockSkew, maxClockSkew)
	}
	return j, false
}

// jwks decodes jwks: {url | file, refresh}.
func (d *decoder) jwks(v *yamlfile.Value, path string) auth.JWKS {
	if v == nil {
		d.P.Once(path, "required: where the keys are, {url: https://…/jwks.json} or {file: keys.json}")
		return auth.JWKS{}
	}
	f := d.Fields(v, path, "url", "file", "refresh")
	k := auth.JWKS{
		URL:     d.Str(f["url"], yamlfile.Field(path, "url")),
		File:    d.Str(f["file"], yamlfile.Field(path, "file")),
		Refresh: d.Duration(f["refresh"], yamlfile.Field(path, "refresh")),
	}
	switch {
	case (k.URL == "") == (k.File == ""):
		d.P.Once(path, "want exactly one of url and file")
	case k.URL != "":
		if u, err := url.Parse(k.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.P.At(yamlfile.Field(path, "url"), "want an absolute http:// or https:// URL")
		}
	}
	if k.Refresh != 0 && k.Refresh < minJWKSRefresh {
		d.P.At(yamlfile.Field(path, "refresh"), "%s is under %s", k.Refresh, minJWKSRefresh)
	}
	return k
}

// claimHeaders decodes claims_to_headers: {claim: header}.
func (d *decoder) claimHeaders(v *yamlfile.Value, path string) map[string]string {
	if v == nil {
		return nil
	}
	if v.Kind != yamlfile.Mapping {
		d.WrongType(v, path, "a mapping of claim to header")
		return nil
	}
	out := map[string]string{}
	seen := map[string]string{} // header → its claim
	for _, m := range v.Members {
		p := yamlfile.Field(path, m.Key)
		d.P.Lines[p] = m.Line
		name := strings.ToLower(d.Str(m.Val, p))
		if err := checkHeader(name); err != nil {
			d.P.At(p, "%v", err)
			continue
		}
		if name == "authorization" {
			d.P.At(p, "the token travels as authorization with forward_token: true; name another header")
			continue
		}
		if other, dup := seen[name]; dup {
			d.P.At(p, "header %q is claim %q's already", name, other)
			continue
		}
		seen[name], out[m.Key] = m.Key, name
	}
	return out
}

// rateLimit decodes rate_limit: {per, rate, burst, max_keys}, or "off".
func (d *decoder) rateLimit(v *yamlfile.Value, path string) (rl *RateLimit, off bool) {
	if v == nil || v.Kind == yamlfile.Null {
		return nil, false
	}
	if v.Kind == yamlfile.Scalar {
		if s, _ := v.V.(string); s == edgeOff {
			return nil, true
		}
		d.WrongType(v, path, `a mapping {per, rate, burst, max_keys}, or "off"`)
		return nil, false
	}
	f := d.Fields(v, path, "per", "rate", "burst", "max_keys")
	rl = &RateLimit{Per: d.Str(f["per"], yamlfile.Field(path, "per"))}
	pp := yamlfile.Field(path, "per")
	switch per := rl.Per; {
	case per == "":
		d.P.Once(pp, "required: what keys a caller: a header (x-user-id), claim:<name>, or client_ip")
	case per == gateway.RateLimitClientIP:
	case strings.HasPrefix(per, "claim:"):
		if strings.TrimPrefix(per, "claim:") == "" {
			d.P.At(pp, "claim: names no claim; want claim:sub, say")
		}
	default:
		rl.Per = strings.ToLower(per)
		if err := checkHeader(rl.Per); err != nil {
			d.P.At(pp, "%v", err)
		}
	}
	rl.Rate = d.rate(f["rate"], yamlfile.Field(path, "rate"))
	rl.Burst = d.Positive(f["burst"], yamlfile.Field(path, "burst"), 1_000_000_000, "")
	rl.MaxKeys = d.Positive(f["max_keys"], yamlfile.Field(path, "max_keys"), maxRateKeys, "")
	return rl, false
}

// rate decodes "N/s", "N/m" or "N/h" as calls per second.
func (d *decoder) rate(v *yamlfile.Value, path string) float64 {
	if v == nil {
		d.P.Once(path, "required: calls per caller, such as 100/s")
		return 0
	}
	s, ok := d.StrOK(v, path)
	if !ok {
		return 0
	}
	num, unit, _ := strings.Cut(s, "/")
	per := map[string]float64{"s": 1, "m": 60, "h": 3600}[unit]
	n, err := strconv.ParseFloat(num, 64)
	if per == 0 || err != nil || n <= 0 || n > 1e9 {
		d.P.At(path, "invalid rate %q: want a positive number of calls per s, m or h, such as 100/s", s)
		return 0
	}
	return n / per
}

// edgeFiles resolves the key files of defaults and routes against dir,
// the routes file's directory, and checks that they can be read.
func edgeFiles(c *Config, dir string, p *yamlfile.Problems) {
	check := func(j *auth.JWT, path string) {
		if j == nil || j.JWKS.File == "" {
			return
		}
		j.JWKS.File = abs(dir, j.JWKS.File)
		if fi, err := os.Stat(j.JWKS.File); err != nil {
			p.At(yamlfile.Field(path, "auth.jwt.jwks.file"), "%v", err)
		} else if !fi.Mode().IsRegular() {
			p.At(yamlfile.Field(path, "auth.jwt.jwks.file"), "%s is not a regular file", j.JWKS.File)
		}
	}
	check(c.Defaults.Auth, "defaults")
	for i := range c.Routes {
		check(c.Routes[i].Auth, yamlfile.Index("routes", i))
	}
}

// validateEdge checks what auth and rate_limit ask of the rest of a
// route, defaults applied.
func validateEdge(c *Config, p *yamlfile.Problems) {
	for i := range c.Routes {
		r, path := &c.Routes[i], yamlfile.Index("routes", i)
		if rl := r.RateLimit; rl != nil && strings.HasPrefix(rl.Per, "claim:") && r.Auth == nil {
			p.Once(yamlfile.Field(path, "rate_limit"), "per: %s needs auth on the route: a claim comes from a verified token", rl.Per)
		}
		if r.Auth != nil && !r.Auth.ForwardToken && slices.Contains(r.Forward, "authorization") {
			p.Once(yamlfile.Field(path, "forward_headers"), "authorization is the caller's token, which auth removes unless auth.jwt.forward_token is true")
		}
	}
}

// JWKSources returns the key sources the routes name, each once: what an
// auth.Keys must keep across a reload.
func (c *Config) JWKSources() []auth.JWKS {
	var out []auth.JWKS
	for _, r := range c.Routes {
		if r.Auth != nil && !slices.Contains(out, r.Auth.JWKS) {
			out = append(out, r.Auth.JWKS)
		}
	}
	return out
}

// gatewayAuth translates a route's auth, its verifier over keys.
func gatewayAuth(j *auth.JWT, keys *auth.Keys) *gateway.Auth {
	if j == nil {
		return nil
	}
	return &gateway.Auth{Verifier: keys.Verifier(*j), ClaimsToHeaders: maps.Clone(j.ClaimsToHeaders), ForwardToken: j.ForwardToken}
}
