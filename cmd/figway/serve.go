package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/figway/figway/adapters/amqp"
	"github.com/figway/figway/adapters/grpcin"
	"github.com/figway/figway/adapters/httpin"
	"github.com/figway/figway/adapters/legacy"
	"github.com/figway/figway/adapters/statuspage"
	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/metrics"
	"github.com/figway/figway/operations"
)

func serveCmd(args []string, stderr io.Writer) int {
	fs, path := configFlag("serve", args, stderr)
	logFormat := fs.String("log-format", "json", "log format: json or text")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	accessLog := fs.Bool("access-log", false, "log every successful call too (failed calls are always logged)")
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
	if err := serve(ctx, *path, cfg, log, serveOptions{accessLog: *accessLog}); err != nil {
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

// serve runs the gateway until ctx is cancelled. Shutdown order: readiness
// goes false, the gRPC and REST listeners stop accepting and calls in flight
// drain (up to server.shutdown_grace), then the AMQP client stops its reply
// consumers, closes its channels and its connection.
func serve(ctx context.Context, path string, cfg *config.Config, log *slog.Logger, opts serveOptions) error {
	table, err := cfg.Table(nil)
	if err != nil {
		return err
	}
	ingressTLS, err := serverTLS(cfg)
	if err != nil {
		return err
	}
	amqpTLS, err := brokerTLS(cfg)
	if err != nil {
		return err
	}
	// The sources are read at scrape time, once everything below exists.
	var (
		gw        *gateway.Gateway
		client    *amqp.Client
		ready     func() bool
		opsSource func() operations.Stats
	)
	m := metrics.New(versionString(), metrics.Sources{
		Table:     func() *gateway.Table { return gw.Table() },
		Broker:    func() metrics.BrokerStats { return brokerStats(client.Stats()) },
		Ready:     func() bool { return ready() },
		Migration: func(method string) gateway.Migration { return gw.Migration(method) },
		Operations: func() (operations.Stats, bool) {
			if opsSource == nil {
				return operations.Stats{}, false
			}
			return opsSource(), true
		},
		Consumers: func(method string) (int, bool) { return gw.RouteConsumers(method) },
	})
	host, _ := os.Hostname()
	client = amqp.New(amqp.Config{
		URLs:        cfg.Broker.URLs,
		Reply:       cfg.Broker.Reply,
		Channels:    cfg.Broker.Channels,
		Heartbeat:   cfg.Broker.Heartbeat,
		DialTimeout: cfg.Broker.DialTimeout,
		Topology:    cfg.Topology,
		Name:        "figway " + host,
		Logger:      log,
		TLS:         amqpTLS,
		OnConfirm:   m.ObserveConfirm,
	})
	gwOpts := gateway.Options{Publisher: client, Table: table, Source: "figway://" + host, Logger: log}
	var legacyGRPC grpc.StreamHandler // gRPC calls that no route takes
	if cfg.Legacy.GRPC != "" {
		lp, err := legacy.DialGRPC(cfg.Legacy.GRPC)
		if err != nil {
			return err
		}
		defer lp.Close()
		legacyGRPC, gwOpts.Legacy = lp.Proxy, lp
	}
	gw = gateway.New(gwOpts)

	// Async routes keep their operations on a stream (docs/rest.md, "Long
	// calls"); without one, nothing is declared.
	var (
		ops   *operations.Store
		opLog *amqp.OperationLog
	)
	if retention := cfg.AsyncRetention(); retention > 0 {
		opLog = client.NewOperationLog(amqp.LogConfig{Stream: cfg.Server.Operations.Stream, Retention: retention})
		ops = operations.New(operations.Config{Log: opLog, Max: cfg.Server.Operations.Max,
			MaxBytes: int64(cfg.Server.Operations.MaxBytes), Key: cfg.Server.Operations.Key, Logger: log})
		opsSource = ops.Stats
	}

	var health interface {
		SetServingStatus(string, healthpb.HealthCheckResponse_ServingStatus)
		Shutdown()
	}
	ingress := grpcin.New(gw, grpcin.Options{
		MaxRequestBytes: cfg.Server.MaxRequestBytes,
		Logger:          log,
		Legacy:          legacyGRPC,
		AccessLog:       opts.accessLog,
		ServerOptions:   grpcServerOptions(m, gw, ingressTLS),
		Register: func(s *grpc.Server) {
			health = grpcin.RegisterHealth(s)
			// Reflection follows reloads: it answers from the table serving.
			files := func() *protoregistry.Files { return gw.Table().Files() }
			if ops != nil {
				grpcin.RegisterOperations(s, ops, gw.Table)
				files = grpcin.WithOperationsFiles(files)
			}
			grpcin.RegisterLiveReflection(s, files)
		},
	})
	var legacyHTTP http.Handler // REST calls that no binding takes
	if cfg.Legacy.HTTP != "" {
		if legacyHTTP, err = legacy.NewHTTP(cfg.Legacy.HTTP, log); err != nil {
			return err
		}
	}
	restOpts := restOptions(cfg)
	restOpts.Logger, restOpts.Passthrough, restOpts.AccessLog, restOpts.Middleware, restOpts.OnRoute = log, legacyHTTP, opts.accessLog, m.HTTP, metrics.SetRoute
	restOpts.Operations, restOpts.OperationsPath, restOpts.CORS = ops, cfg.Server.Operations.Path, restCORS(cfg.Server.CORS)
	rest, err := httpin.New(gw, restOpts)
	if err != nil {
		return fmt.Errorf("REST bindings: %w", err)
	}
	lis, err := listenAll(
		func() (net.Listener, error) { return net.Listen("tcp", cfg.Server.GRPC) },
		func() (net.Listener, error) { return listenHTTP(cfg.Server.HTTP, ingressTLS) },
		func() (net.Listener, error) { return net.Listen("tcp", cfg.Server.Admin) },
	)
	if err != nil {
		return err
	}
	grpcLis, httpLis, adminLis := lis[0], lis[1], lis[2]

	var draining atomic.Bool
	ready = func() bool {
		return !draining.Load() && client.Ready() && (ops == nil || ops.Stats().CaughtUp)
	}
	configLog := statuspage.NewConfigLog(watchList(path, cfg))
	status := statuspage.New(statuspage.Options{
		Gatherer:  m.Registry(),
		Table:     gw.Table,
		Migration: gw.Migration,
		Broker: func() []statuspage.Connection {
			s := client.Stats()
			node := s.Node // the node it reached; while it reaches none, those it tries
			if node == "" {
				node = brokerNodes(cfg.Broker.URLs)
			}
			return []statuspage.Connection{{Node: node, Connected: s.Connected, Blocked: s.Blocked, Reconnects: s.Reconnects}}
		},
		Config:  configLog.State,
		Version: versionString(),
		Exposed: !loopback(adminLis.Addr()),
		Logger:  log,
	})
	admin := &http.Server{Handler: adminMux(ready, m.Handler(), status), ReadHeaderTimeout: 5 * time.Second}

	brokerCtx, stopBroker := context.WithCancel(context.Background())
	defer stopBroker()
	var wg sync.WaitGroup
	wg.Go(func() { client.Run(brokerCtx) })
	wg.Go(func() { gw.Run(brokerCtx) }) // shadow copies
	// The operations' calls end before the broker stops: their outcome
	// goes to the log.
	opsCtx, stopOps := context.WithCancel(context.Background())
	defer stopOps()
	var opsDone sync.WaitGroup
	if ops != nil {
		wg.Go(func() { opLog.Run(brokerCtx, ops) })
		opsDone.Go(func() { ops.Run(opsCtx) })
	}
	wg.Go(func() {
		if err := admin.Serve(adminLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener", "err", err)
		}
	})
	wg.Go(func() { watchReadiness(brokerCtx, ready, health.SetServingStatus, log) })
	wg.Go(func() { status.Run(brokerCtx) })
	wg.Go(func() { newReloader(path, cfg, gw, rest, m, configLog, log).run(brokerCtx) })

	log.Info("figway serving", "grpc", grpcLis.Addr().String(), "http", httpLis.Addr().String(),
		"admin", adminLis.Addr().String(), "tls", ingressTLS != nil, "routes", len(table.Routes()), "version", versionString())
	// Readiness goes false before the listeners stop accepting: the
	// ingresses watch ingressCtx, cancelled only once draining is set.
	// Both drain in parallel; one that fails stops the other.
	ingressCtx, stopIngress := context.WithCancel(context.Background())
	defer stopIngress()
	go func() {
		select {
		case <-ctx.Done():
		case <-ingressCtx.Done():
			return // an ingress failed
		}
		draining.Store(true)
		health.Shutdown() // NOT_SERVING for every service
		log.Info("draining", "grace", cfg.Server.ShutdownGrace.String())
		stopIngress()
	}()
	restErr := make(chan error, 1)
	go func() {
		defer stopIngress()
		restErr <- rest.Serve(ingressCtx, httpLis, cfg.Server.ShutdownGrace)
	}()
	err = ingress.Serve(ingressCtx, grpcLis, cfg.Server.ShutdownGrace)
	stopIngress()
	err = errors.Join(err, <-restErr)
	stopOps()
	opsDone.Wait()
	stopBroker()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	admin.Shutdown(shutdownCtx)
	cancel()
	wg.Wait()
	log.Info("figway stopped")
	return err
}

// brokerStats are the AMQP client's counters that metrics reports.
func brokerStats(s amqp.Stats) metrics.BrokerStats {
	return metrics.BrokerStats{Connected: s.Connected, Blocked: s.Blocked, Pending: s.Pending,
		UnmatchedReplies: s.UnmatchedReplies, Reconnects: s.Reconnects}
}

// serveOptions are serve's command-line switches.
type serveOptions struct {
	accessLog bool // log successful calls too
}

// grpcServerOptions are the gRPC ingress's metrics interceptor and, when
// tc is not nil, its TLS credentials (no plaintext fallback).
func grpcServerOptions(m *metrics.Metrics, gw *gateway.Gateway, tc *tls.Config) []grpc.ServerOption {
	o := []grpc.ServerOption{grpc.ChainStreamInterceptor(m.StreamInterceptor(metrics.GRPCRoutes(gw.Table)))}
	if tc != nil {
		o = append(o, grpc.Creds(credentials.NewTLS(tc)))
	}
	return o
}

func adminMux(ready func() bool, metrics, status http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /", status) // the migration status page, and its assets
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready: broker not connected, blocked, or draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	// Profiles, on the admin listener only (keep it on loopback or a
	// private network: profiles show internals).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// brokerNodes lists the hosts of the broker URLs, without their
// credentials.
func brokerNodes(urls []string) string {
	hosts := make([]string, 0, len(urls))
	for _, u := range urls {
		if p, err := url.Parse(u); err == nil {
			hosts = append(hosts, p.Host)
		}
	}
	return strings.Join(hosts, ", ")
}

// loopback reports whether a listener's address is a loopback one.
func loopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// watchReadiness keeps grpc.health.v1's overall status in step with ready,
// and logs each change.
func watchReadiness(ctx context.Context, ready func() bool, set func(string, healthpb.HealthCheckResponse_ServingStatus), log *slog.Logger) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last := healthpb.HealthCheckResponse_UNKNOWN
	for {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ready() {
			st = healthpb.HealthCheckResponse_SERVING
		}
		if st != last {
			set("", st)
			if last != healthpb.HealthCheckResponse_UNKNOWN || st != healthpb.HealthCheckResponse_NOT_SERVING {
				log.Info("readiness changed", "ready", st == healthpb.HealthCheckResponse_SERVING)
			}
			last = st
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// restCORS is the REST ingress's CORS policy from server.cors, or nil.
func restCORS(c *config.CORS) *httpin.CORS {
	if c == nil {
		return nil
	}
	return &httpin.CORS{AllowOrigins: c.AllowOrigins, AllowHeaders: c.AllowHeaders, ExposeHeaders: c.ExposeHeaders,
		AllowCredentials: c.AllowCredentials, MaxAge: c.MaxAge}
}
