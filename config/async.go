package config

import (
	"os"
	"strings"
	"time"

	"github.com/figway/figway/config/yamlfile"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/operations"
)

// Async makes a REST call of an rpc route that is not answered within
// After an asynchronous operation (YAML async; see docs/rest.md, "Long
// calls"), in the gateway's own type. YAML keys: after (if 0, 2s), keep
// (how long a done operation is kept; if 0, 15m), timeout (the deadline of
// an async call in place of the route's; if 0, 10m) and owner_by (a
// request header, lower case, whose value owns the operation: figway keeps
// a keyed hash of it, server.operations_key_file, never the value).
type Async = gateway.Async

// Built-in defaults of async and of the operations index.
const (
	defaultAsyncAfter         = 2 * time.Second
	defaultAsyncKeep          = 15 * time.Minute
	defaultAsyncTimeout       = 10 * time.Minute
	defaultOperationsPath     = operations.DefaultPath
	defaultOperationsStream   = "figway.operations"
	defaultOperationsMax      = operations.DefaultMax
	defaultOperationsMaxBytes = operations.DefaultMaxBytes
	// minKeyBytes is the shortest operations key accepted: 128 bits.
	minKeyBytes = 16
)

// Operations configures where async operations are kept and served
// (YAML keys of server whose names start with operations_).
type Operations struct {
	// Path is the REST path under which operations are served, as
	// Path/{id} (YAML operations_path). If Path is empty, /v1/operations
	// is used.
	Path string

	// Stream is the RabbitMQ stream queue that holds the operations'
	// records (YAML operations_stream). figway declares it. If Stream is
	// empty, figway.operations is used.
	Stream string

	// Max is the most operations one figway holds in memory (YAML
	// operations_max); past it the oldest done operations are dropped, and
	// new ones refused while none is done. If Max is 0, 100000 is used.
	Max int

	// MaxBytes bounds the memory the operations hold, their replies
	// included, in bytes (YAML operations_max_bytes), as Max does. If
	// MaxBytes is 0, 256 MiB is used.
	MaxBytes int

	// KeyFile is a file whose content keys the hash of owner_by values
	// (YAML operations_key_file; relative to the routes file). Every
	// figway serving the same operations needs the same key; at least 16
	// bytes. It is required when a route sets owner_by.
	KeyFile string

	// Key is the content of KeyFile, read at load time.
	Key []byte
}

func (d *decoder) async(v *yamlfile.Value, path string) *Async {
	if v == nil || v.Kind == yamlfile.Null {
		return nil
	}
	f := d.Fields(v, path, "after", "keep", "timeout", "owner_by")
	a := &Async{
		After:   d.Duration(f["after"], yamlfile.Field(path, "after")),
		Keep:    d.Duration(f["keep"], yamlfile.Field(path, "keep")),
		Timeout: d.Duration(f["timeout"], yamlfile.Field(path, "timeout")),
		OwnerBy: strings.ToLower(d.Str(f["owner_by"], yamlfile.Field(path, "owner_by"))),
	}
	if a.OwnerBy != "" {
		if err := checkHeader(a.OwnerBy); err != nil {
			d.P.At(yamlfile.Field(path, "owner_by"), "%v", err)
		}
	}
	return a
}

// operations decodes the operations_* keys of server.
func (d *decoder) operations(f map[string]*yamlfile.Value, path string) Operations {
	o := Operations{
		Path:     d.Str(f["operations_path"], yamlfile.Field(path, "operations_path")),
		Stream:   d.Str(f["operations_stream"], yamlfile.Field(path, "operations_stream")),
		Max:      d.Positive(f["operations_max"], yamlfile.Field(path, "operations_max"), 10_000_000, ""),
		MaxBytes: d.Positive(f["operations_max_bytes"], yamlfile.Field(path, "operations_max_bytes"), 64<<30, " (64 GiB)"),
		KeyFile:  d.Str(f["operations_key_file"], yamlfile.Field(path, "operations_key_file")),
	}
	if p := o.Path; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, "{}*:?#")) {
		d.P.At(yamlfile.Field(path, "operations_path"), "%q is not a path such as /v1/operations: it starts with / and has no trailing /, variables or query", p)
	}
	if s := o.Stream; s != "" && strings.HasPrefix(s, "amq.") {
		d.P.At(yamlfile.Field(path, "operations_stream"), "%q starts with amq., RabbitMQ's reserved prefix", s)
	}
	return o
}

// asyncDefaults gives an async route's settings that neither it nor
// defaults.async set their built-in values.
func asyncDefaults(r *Route) {
	if r.Async == nil {
		return
	}
	setZero(&r.Async.After, defaultAsyncAfter)
	setZero(&r.Async.Keep, defaultAsyncKeep)
	setZero(&r.Async.Timeout, defaultAsyncTimeout)
}

// validateAsync checks the async settings of the routes and loads the
// operations key.
func validateAsync(c *Config, dir string, p *yamlfile.Problems) {
	needKey := ""
	for i := range c.Routes {
		r, path := &c.Routes[i], yamlfile.Index("routes", i)
		a := r.Async
		if a == nil {
			continue
		}
		ap := yamlfile.Field(path, "async")
		if r.To != TargetBroker || r.Pattern != PatternRPC {
			p.Once(ap, "only an rpc route to the broker can answer asynchronously; an event is answered once the broker has it")
			continue
		}
		if a.After > a.Timeout {
			p.At(yamlfile.Field(ap, "after"), "%s is past async.timeout %s: the call would end before it became an operation", a.After, a.Timeout)
		}
		if a.OwnerBy != "" && needKey == "" {
			needKey = yamlfile.Field(ap, "owner_by")
		}
	}
	o := &c.Server.Operations
	if o.KeyFile == "" {
		if needKey != "" {
			p.Once(needKey, "needs server.operations_key_file: the key of the owner's hash, shared by every figway")
		}
		return
	}
	o.KeyFile = abs(dir, o.KeyFile)
	o.Key = readSecret(o.KeyFile, "server.operations_key_file", "key", p)
}

// readSecret reads a key or token file named at path: its content,
// trimmed, at least minKeyBytes long; nil, reported, otherwise.
func readSecret(file, path, what string, p *yamlfile.Problems) []byte {
	b, err := os.ReadFile(file)
	secret := strings.TrimSpace(string(b))
	switch {
	case err != nil:
		p.At(path, "%v", err)
	case len(secret) < minKeyBytes:
		p.At(path, "the %s is %d bytes; want at least %d (such as the output of openssl rand -hex 32)", what, len(secret), minKeyBytes)
	default:
		return []byte(secret)
	}
	return nil
}

// validateAdminToken loads server.admin_token_file.
func validateAdminToken(c *Config, dir string, p *yamlfile.Problems) {
	s := &c.Server
	if s.AdminTokenFile == "" {
		return
	}
	s.AdminTokenFile = abs(dir, s.AdminTokenFile)
	s.AdminToken = readSecret(s.AdminTokenFile, "server.admin_token_file", "token", p)
}

// AsyncRetention is how far back the operations stream must reach: the
// longest an operation of any route lives, pending (async.timeout) and
// then done (async.keep). It is 0 when no route is async.
func (c *Config) AsyncRetention() time.Duration {
	var longest time.Duration
	for _, r := range c.Routes {
		if r.Async != nil {
			longest = max(longest, r.Async.Timeout+r.Async.Keep)
		}
	}
	return longest
}
