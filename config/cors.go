package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/figway/figway/config/yamlfile"
)

// CORS is the cross-origin policy of the REST ingress (YAML server.cors):
// it applies to every REST answer — broker routes, passthrough to legacy,
// errors — and figway answers the browsers' preflight OPTIONS requests.
type CORS struct {
	// AllowOrigins are the origins whose browser pages may call the REST
	// ingress (YAML allow_origins): "https://shop.example.com", with at
	// most one "*" each ("https://*.example.com"), or "*" for any. It is
	// required.
	AllowOrigins []string

	// AllowHeaders are the request headers such pages may send (YAML
	// allow_headers), beyond the CORS-safelisted ones. "*" allows any.
	AllowHeaders []string

	// ExposeHeaders are the response headers such pages may read (YAML
	// expose_headers), beyond the CORS-safelisted ones: name Location,
	// ETag or Grpc-Metadata-* here for scripts to see them.
	ExposeHeaders []string

	// AllowCredentials lets pages send cookies and HTTP authentication
	// (YAML allow_credentials). It cannot go with allow_origins: ["*"].
	AllowCredentials bool

	// MaxAge is how long a browser may cache a preflight answer (YAML
	// max_age), at most 24h. If MaxAge is 0, no Access-Control-Max-Age is
	// sent and browsers use their own default (5s).
	MaxAge time.Duration
}

// maxCORSAge bounds max_age: browsers cap it at 2h (Chromium) or 24h
// (Firefox) anyway.
const maxCORSAge = 24 * time.Hour

func (d *decoder) cors(v *yamlfile.Value, path string) *CORS {
	if v == nil || v.Kind == yamlfile.Null {
		return nil
	}
	f := d.Fields(v, path, "allow_origins", "allow_headers", "expose_headers", "allow_credentials", "max_age")
	c := &CORS{
		AllowCredentials: d.Bool(f["allow_credentials"], yamlfile.Field(path, "allow_credentials")),
		MaxAge:           d.Duration(f["max_age"], yamlfile.Field(path, "max_age")),
	}
	origins, _ := d.Strs(f["allow_origins"], yamlfile.Field(path, "allow_origins"))
	for _, it := range origins {
		if err := checkOrigin(it.S); err != nil {
			d.P.At(it.Path, "%v", err)
			continue
		}
		c.AllowOrigins = append(c.AllowOrigins, it.S)
	}
	if len(origins) == 0 {
		d.P.Once(yamlfile.Field(path, "allow_origins"), "required: the origins whose pages may call the REST ingress, such as https://shop.example.com, https://*.example.com or *")
	}
	if c.AllowCredentials {
		for _, o := range c.AllowOrigins {
			if o == "*" {
				d.P.At(yamlfile.Field(path, "allow_credentials"), `allow_credentials with allow_origins "*" would let any site call with the user's cookies: list the origins`)
			}
		}
	}
	c.AllowHeaders = d.corsHeaders(f["allow_headers"], yamlfile.Field(path, "allow_headers"))
	c.ExposeHeaders = d.corsHeaders(f["expose_headers"], yamlfile.Field(path, "expose_headers"))
	if c.MaxAge < 0 || c.MaxAge > maxCORSAge {
		d.P.At(yamlfile.Field(path, "max_age"), "must be from 0 to 24h, not %v", c.MaxAge)
	}
	return c
}

// corsHeaders decodes a list of header names, or "*".
func (d *decoder) corsHeaders(v *yamlfile.Value, path string) []string {
	items, _ := d.Strs(v, path)
	var out []string
	for _, it := range items {
		if it.S != "*" && !isToken(it.S) {
			d.P.At(it.Path, "%q is not a header name", it.S)
			continue
		}
		out = append(out, it.S)
	}
	return out
}

// checkOrigin checks an allowed origin: "*", or scheme://host[:port] with
// at most one "*" standing for any run of characters.
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	if strings.Count(o, "*") > 1 {
		return fmt.Errorf("%q has more than one *: a pattern may have one", o)
	}
	u, err := url.Parse(strings.Replace(o, "*", "x", 1))
	if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q is not an origin: want scheme://host[:port], such as https://shop.example.com, with no path", o)
	}
	return nil
}
