package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/figway/figway/adapters/httpin"
	"github.com/figway/figway/adapters/statuspage"
	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/metrics"
)

// reloadPoll is how often the reloader looks at the routes file and its
// descriptor sets. A change is acted on once it has held still for one
// more poll (an editor's truncate-then-write, a ConfigMap's symlink swap),
// so a new route serves within about two polls of the write.
const reloadPoll = 250 * time.Millisecond

// reloader loads the routes file again on SIGHUP and when the file or a
// descriptor set it names changes. A file that does not load, or whose
// REST bindings cannot be served, is refused: its problems are logged with
// their field paths, figway_config_reloads_total{result="failed"} counts
// it and the running table stays. A good one becomes the new table in one
// atomic swap; calls already running finish on the table they started
// with. Server, broker and topology settings are read only at start.
type reloader struct {
	path    string
	gw      *gateway.Gateway
	rest    *httpin.Server
	metrics *metrics.Metrics
	status  *statuspage.ConfigLog
	log     *slog.Logger

	watched []string // the routes file and its descriptor sets
	// retention is the operations stream's, set at start from the
	// routes' async settings (0: no operations).
	retention time.Duration
}

func newReloader(path string, cfg *config.Config, gw *gateway.Gateway, rest *httpin.Server, m *metrics.Metrics, status *statuspage.ConfigLog, log *slog.Logger) *reloader {
	return &reloader{path: path, gw: gw, rest: rest, metrics: m, status: status, log: log, watched: watchList(path, cfg),
		retention: cfg.AsyncRetention()}
}

func watchList(path string, cfg *config.Config) []string {
	return append([]string{path}, cfg.Descriptors...)
}

// run serves SIGHUP and polls the watched files until ctx is done.
func (r *reloader) run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(reloadPoll)
	defer tick.Stop()
	seen := stamp(r.watched)
	pending := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload("SIGHUP")
			seen, pending = stamp(r.watched), ""
		case <-tick.C:
			now := stamp(r.watched)
			switch {
			case now == seen:
				pending = ""
			case now != pending:
				pending = now // changed: wait for it to hold still
			default:
				r.reload("file changed")
				seen, pending = stamp(r.watched), ""
			}
		}
	}
}

// stamp sums up the size, modification time and identity of files; a
// missing file stamps as missing. os.Stat follows symbolic links, so a
// Kubernetes ConfigMap update (a swap of the ..data link) changes it.
func stamp(files []string) string {
	s := ""
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			s += f + ":missing;"
			continue
		}
		s += fmt.Sprintf("%s:%d:%d:%v;", f, fi.Size(), fi.ModTime().UnixNano(), fileID(fi))
	}
	return s
}

func (r *reloader) reload(trigger string) {
	cfg, err := config.Load(r.path)
	if err != nil {
		r.refuse(trigger, "routes file invalid", err)
		return
	}
	t, err := cfg.Table(r.gw.Table())
	if err != nil {
		r.refuse(trigger, "route table", err)
		return
	}
	if err := r.rest.SetTable(t); err != nil {
		r.refuse(trigger, "REST bindings", err)
		return
	}
	r.gw.SetTable(t)
	r.watched = watchList(r.path, cfg)
	if want := cfg.AsyncRetention(); want > r.retention {
		// The stream and its read-back window are set at start.
		r.log.Warn("async settings take effect at the next restart", "path", r.path,
			"operations", r.retention > 0, "retention", r.retention.String(), "wanted", want.String())
	}
	r.metrics.Reloaded(true)
	r.status.Loaded(trigger, r.watched)
	r.log.Info("routes reloaded", "path", r.path, "trigger", trigger, "routes", len(t.Routes()))
}

func (r *reloader) refuse(trigger, what string, err error) {
	r.metrics.Reloaded(false)
	r.status.Refused(trigger, problems(err))
	r.log.Error("reload refused: "+what+"; keeping the running routes",
		"path", r.path, "trigger", trigger, "problems", problems(err))
}

// problems lists the problems of a failed load one by one, each with its
// field path (config.FieldError), for a log attribute.
func problems(err error) []string {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	return out
}

// serverTLS returns the TLS configuration of the ingress listeners, or nil
// for plaintext.
func serverTLS(cfg *config.Config) (*tls.Config, error) {
	if cfg.Server.TLS == nil {
		return nil, nil
	}
	c, err := cfg.Server.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("server.tls: %w", err)
	}
	return c, nil
}

// brokerTLS returns the TLS configuration of amqps:// connections, or nil
// for the AMQP client's default (the system's roots).
func brokerTLS(cfg *config.Config) (*tls.Config, error) {
	if cfg.Broker.TLS == nil {
		return nil, nil
	}
	c, err := cfg.Broker.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("broker.tls: %w", err)
	}
	return c, nil
}

// listenHTTP listens on addr, through TLS when tc is not nil: HTTP/2 and
// HTTP/1.1 by ALPN, and a client that does not start a handshake is
// disconnected, never served in plaintext.
func listenHTTP(addr string, tc *tls.Config) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil || tc == nil {
		return l, err
	}
	tc = tc.Clone()
	tc.NextProtos = []string{"h2", "http/1.1"}
	return tls.NewListener(l, tc), nil
}

// listenAll opens the listeners of addrs in order; on error it closes
// those it opened.
func listenAll(open ...func() (net.Listener, error)) ([]net.Listener, error) {
	var ls []net.Listener
	for _, o := range open {
		l, err := o()
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}
