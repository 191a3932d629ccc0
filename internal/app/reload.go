package app

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/figway/figway/config"
)

// reloadPoll is how often the reloader looks at the routes file and its
// descriptor sets. A change is acted on once it has held still for one
// more poll (an editor's truncate-then-write, a ConfigMap's symlink swap),
// so a new route serves within about two polls of the write.
const reloadPoll = 250 * time.Millisecond

// reloader loads the routes file again when [App.Reload] asks (SIGHUP)
// and when the file or a descriptor set it names changes. A file that
// does not load, or whose REST bindings cannot be served, is refused: its
// problems are logged with their field paths,
// figway_config_reloads_total{result="failed"} counts it and the running
// table stays. A good one becomes the new table in one atomic swap; calls
// already running finish on the table they started with. Server, broker
// and topology settings are read only at start.
type reloader struct {
	a *App
	// retention is the operations stream's, set at start from the
	// routes' async settings (0: no operations).
	retention time.Duration

	mu      sync.Mutex // one reload at a time; guards the fields below
	watched []string   // the routes file and its descriptor sets
	seen    string     // stamp of watched when last loaded
}

func newReloader(a *App, cfg *config.Config) *reloader {
	r := &reloader{a: a, watched: watchList(a.path, cfg), retention: cfg.AsyncRetention()}
	r.seen = stamp(r.watched)
	return r
}

func watchList(path string, cfg *config.Config) []string {
	return append([]string{path}, cfg.Descriptors...)
}

// Reload loads the routes file again and serves its routes, as SIGHUP
// does; trigger says why, for the log and the status page. It returns the
// problems of a file it refused (joined, each with its field path), and
// the running routes stay.
func (a *App) Reload(trigger string) error {
	return a.reloader.reload(trigger)
}

// run polls the watched files until ctx is done.
func (r *reloader) run(ctx context.Context) {
	tick := time.NewTicker(reloadPoll)
	defer tick.Stop()
	pending := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.mu.Lock()
		now, seen := stamp(r.watched), r.seen
		r.mu.Unlock()
		switch {
		case now == seen:
			pending = ""
		case now != pending:
			pending = now // changed: wait for it to hold still
		default:
			r.reload("file changed")
			pending = ""
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

func (r *reloader) reload(trigger string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() { r.seen = stamp(r.watched) }()
	a := r.a
	cfg, err := config.Load(a.path)
	if err != nil {
		r.refuse(trigger, "routes file invalid", err)
		return err
	}
	t, err := cfg.ServingTable(a.gw.Table(), a.keys)
	if err != nil {
		r.refuse(trigger, "route table", err)
		return err
	}
	if err := a.rest.SetTable(t); err != nil {
		r.refuse(trigger, "REST bindings", err)
		return err
	}
	a.gw.SetTable(t)
	a.keys.Retain(cfg.JWKSources())
	r.watched = watchList(a.path, cfg)
	if want := cfg.AsyncRetention(); want > r.retention {
		// The stream and its read-back window are set at start.
		a.log.Warn("async settings take effect at the next restart", "path", a.path,
			"operations", r.retention > 0, "retention", r.retention.String(), "wanted", want.String())
	}
	if a.ramps == nil && cfg.RampStream() != "" {
		a.log.Warn("ramps take effect at the next restart: figway started without a ramped route", "path", a.path)
	}
	a.metrics.Reloaded(true)
	a.configLog.Loaded(trigger, r.watched)
	a.log.Info("routes reloaded", "path", a.path, "trigger", trigger, "routes", len(t.Routes()))
	return nil
}

func (r *reloader) refuse(trigger, what string, err error) {
	a := r.a
	a.metrics.Reloaded(false)
	a.configLog.Refused(trigger, Problems(err))
	a.log.Error("reload refused: "+what+"; keeping the running routes",
		"path", a.path, "trigger", trigger, "problems", Problems(err))
}

// Problems lists the problems of a failed load one by one, each with its
// field path (config.FieldError).
func Problems(err error) []string {
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
