// Package statuspage is the migration status page of figway's admin
// listener ("/"): for every method of the loaded descriptors, where its
// calls go and how they fare over the last minute, the broker
// connection, and the routes file's last load (docs/operations.md).
//
// The numbers are differences between samples of the Prometheus registry
// that /metrics serves — the series a dashboard would read, with no
// bookkeeping of the page's own — taken every few seconds by [Page.Run]
// and once more for each view. The page is rendered by figway with
// html/template; its stylesheet and the script that refreshes it in place
// are embedded in the binary, so it works offline. It only reads.
package statuspage

import (
	"context"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/figway/figway/gateway"
)

//go:embed assets
var assets embed.FS

var page = template.Must(template.New("page.html").Funcs(funcs).ParseFS(assets, "assets/*.html"))

// Connection is one broker connection as the page shows it.
type Connection struct {
	Node       string // the node it is connected to (or, if none, those it tries): host:port, never the URL (it may hold a password)
	Connected  bool
	Blocked    bool
	Reconnects uint64
}

// Load is the outcome of a load of the routes file.
type Load struct {
	At       time.Time
	Trigger  string   // "start", "SIGHUP", "file changed"
	OK       bool     // the new routes serve
	Problems []string // why it was refused, each with its field path
}

// Config is the routes file as the page shows it.
type Config struct {
	Path     string
	Checksum string // of the file and its descriptor sets, as serving
	Loaded   time.Time
	Last     Load // the last load or reload, refused or not
}

// Options configures a Page.
type Options struct {
	// Gatherer is the registry /metrics serves: the page's numbers come
	// from its series.
	Gatherer prometheus.Gatherer
	// Table returns the route table serving now: the methods, where they
	// go, when their breakers changed.
	Table func() *gateway.Table
	// Migration returns the recent shadow mismatches of a method.
	Migration func(method string) gateway.Migration
	// Broker returns the broker connections.
	Broker func() []Connection
	// Config returns the routes file's state.
	Config func() Config
	// Version is figway's version, for the header.
	Version string
	// Exposed says the admin listener is not bound to loopback: the footer
	// says so.
	Exposed bool
	// Ramps returns the ramps of the routes serving now; nil: none.
	Ramps func() []Ramp
	// Every is how often Run samples the registry. If 0, 2s.
	Every time.Duration
	// Window is the span of the rates shown. If 0, one minute.
	Window time.Duration
	Logger *slog.Logger // if nil, slog.Default()
}

// Page serves the status page. Its methods are safe for concurrent use.
type Page struct {
	o   Options
	log *slog.Logger

	mu      sync.Mutex
	samples []*sample // oldest first, spanning Window and one more
}

var _ http.Handler = (*Page)(nil)

// New returns a Page; Run samples for it.
func New(o Options) *Page {
	if o.Every <= 0 {
		o.Every = 2 * time.Second
	}
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	p := &Page{o: o, log: o.Logger}
	if p.log == nil {
		p.log = slog.Default()
	}
	return p
}

// Run samples the registry every Options.Every until ctx is done.
func (p *Page) Run(ctx context.Context) error {
	t := time.NewTicker(p.o.Every)
	defer t.Stop()
	p.sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			p.sample(now)
		}
	}
}

func (p *Page) sample(now time.Time) {
	s, err := take(p.o.Gatherer, now)
	if err != nil {
		p.log.Warn("status page: gathering metrics", "err", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.samples = append(p.samples, s)
	// Keep the newest sample at or before the window's start, and all
	// after it.
	cut := 0
	for i, old := range p.samples {
		if now.Sub(old.at) >= p.o.Window {
			cut = i
		}
	}
	p.samples = p.samples[cut:]
}

// history returns the samples of the window, oldest first, and a fresh one
// taken now.
func (p *Page) history(now time.Time) ([]*sample, *sample) {
	fresh, err := take(p.o.Gatherer, now)
	if err != nil {
		p.log.Warn("status page: gathering metrics", "err", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*sample(nil), p.samples...), fresh
}

// ServeHTTP serves the page at "/" and, at "/?part=body", the part of it
// that the page's script swaps in to refresh; and its assets.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the status page only reads", http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case "/":
	case "/status.css", "/status.js":
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, assets, "assets"+r.URL.Path)
		return
	default:
		http.NotFound(w, r)
		return
	}
	v := p.view(time.Now())
	name := "page"
	if r.URL.Query().Get("part") == "body" {
		name = "body"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := page.ExecuteTemplate(w, name, v); err != nil {
		p.log.Warn("status page: rendering", "err", err)
	}
}
