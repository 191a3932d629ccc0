package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/figway/figway/config"
	"github.com/figway/figway/internal/app"
)

func serveCmd(args []string, stderr io.Writer) int {
	fs, path := configFlag("serve", args, stderr)
	logFormat := fs.String("log-format", "json", "log format: json or text")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	accessLog := fs.Bool("access-log", false, "log every successful call too (failed calls are always logged)")
	pprofOn := fs.Bool("pprof", false, "serve Go profiles under /debug/pprof/ on the admin listener")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "figway:", err)
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printProblems(stderr, *path, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, *path, cfg, log, serveOptions{accessLog: *accessLog, pprof: *pprofOn}); err != nil {
		log.Error("figway stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %v", err)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	}
	return nil, fmt.Errorf("-log-format: %q is neither json nor text", format)
}

// serve runs figway on the routes file at path, cfg loaded, until ctx is
// cancelled (internal/app has the wiring and the shutdown order); SIGHUP
// loads the routes file again.
func serve(ctx context.Context, path string, cfg *config.Config, log *slog.Logger, opts serveOptions) error {
	a, err := app.New(path, cfg, app.Options{Logger: log, AccessLog: opts.accessLog, Pprof: opts.pprof, Version: versionString()})
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.Reload("SIGHUP") // a refused file is logged with its problems
			}
		}
	})
	err = a.Run(ctx)
	cancel()
	wg.Wait()
	return err
}

// serveOptions are serve's command-line switches.
type serveOptions struct {
	accessLog bool // log successful calls too
	pprof     bool // serve /debug/pprof/ on the admin listener
}
