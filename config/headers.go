package config

import (
	"fmt"
	"strings"

	"github.com/figway/figway/config/yamlfile"
)

// headers decodes a forward_headers list: gRPC metadata keys and HTTP
// header names, lower-cased, that are copied onto each message as
// figway-md-<name>. It returns nil when the list is absent and an empty,
// non-nil slice for an explicit [].
func (d *decoder) headers(v *yamlfile.Value, path string) []string {
	names, present := d.Strs(v, path)
	if !present {
		return nil
	}
	out := make([]string, 0, len(names))
	first := map[string]string{} // name → path of its first appearance
	for _, it := range names {
		name := strings.ToLower(it.S)
		if err := checkHeader(name); err != nil {
			d.P.At(it.Path, "%v", err)
			continue
		}
		if p, dup := first[name]; dup {
			d.P.At(it.Path, "%q is listed twice (see %s)", name, p)
			continue
		}
		first[name] = it.Path
		out = append(out, name)
	}
	return out
}

// hopByHop are the headers that describe one HTTP connection (RFC 7230
// §6.1, and those net/http/httputil drops); proxy-* are added by prefix.
var hopByHop = map[string]bool{
	"connection":        true,
	"keep-alive":        true,
	"te":                true,
	"trailer":           true,
	"transfer-encoding": true,
	"upgrade":           true,
}

// checkHeader checks one lower-case header name and says why it cannot be
// forwarded.
func checkHeader(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty header name")
	case strings.HasPrefix(name, ":"):
		return fmt.Errorf("%q is an HTTP/2 pseudo-header, which describes the request itself; only regular headers are forwarded", name)
	case !isToken(name):
		return fmt.Errorf("%q is not a header name: RFC 7230 allows letters, digits and !#$%%&'*+-.^_`|~ only", name)
	case hopByHop[name] || strings.HasPrefix(name, "proxy-"):
		return fmt.Errorf("%q is a hop-by-hop header: it belongs to one connection and means nothing on a message", name)
	case name == "cc" || name == "bcc":
		return fmt.Errorf("%q is a RabbitMQ sender-selected distribution header: on a message it adds routing keys", name)
	case strings.HasPrefix(name, "grpc-"):
		return fmt.Errorf("%q is reserved for gRPC's own protocol (grpc-timeout travels as figway-deadline)", name)
	case strings.HasPrefix(name, "figway-"):
		return fmt.Errorf("%q is in figway's own namespace; clients may not set it", name)
	}
	return nil
}

// isToken reports whether s is an RFC 7230 token.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}

// header decodes one header name, such as pin_by's: lower-cased, and
// checked as forward_headers' names are.
func (d *decoder) header(v *yamlfile.Value, path string) string {
	s, ok := d.StrOK(v, path)
	if !ok || v == nil {
		return ""
	}
	name := strings.ToLower(s)
	if err := checkHeader(name); err != nil {
		d.P.At(path, "%v", err)
	}
	return name
}

// responseHeaders decodes a response_headers list: reply metadata keys
// that REST callers get under their own name. It returns nil when the list
// is absent and an empty, non-nil slice for an explicit [].
func (d *decoder) responseHeaders(v *yamlfile.Value, path string) []string {
	return d.metadataKeys(v, path, func(name string) error {
		switch name {
		case "content-type", "content-length":
			return fmt.Errorf("%q describes the body, which figway writes: a worker cannot set it", name)
		}
		return nil
	})
}

// metadataKeys decodes a list of reply metadata keys: lower-cased, each a
// header name that may travel as gRPC metadata, listed once, and passing
// the extra checks.
func (d *decoder) metadataKeys(v *yamlfile.Value, path string, checks ...func(string) error) []string {
	names, present := d.Strs(v, path)
	if !present {
		return nil
	}
	out := make([]string, 0, len(names))
	seen := map[string]string{}
	for _, it := range names {
		name := strings.ToLower(it.S)
		if err := checkHeader(name); err != nil {
			d.P.At(it.Path, "%v", err)
			continue
		}
		if err := checkAll(name, checks); err != nil {
			d.P.At(it.Path, "%v", err)
			continue
		}
		if p, dup := seen[name]; dup {
			d.P.At(it.Path, "%q is listed twice (see %s)", name, p)
			continue
		}
		seen[name] = it.Path
		out = append(out, name)
	}
	return out
}

func checkAll(name string, checks []func(string) error) error {
	for _, c := range checks {
		if err := c(name); err != nil {
			return err
		}
	}
	return nil
}
