package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/figway/figway/adapters/amqp"
	"github.com/figway/figway/adapters/grpcin"
	"github.com/figway/figway/adapters/httpin"
	"github.com/figway/figway/adapters/legacy"
	"github.com/figway/figway/adapters/statuspage"
	"github.com/figway/figway/auth"
	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/connlimit"
	"github.com/figway/figway/metrics"
	"github.com/figway/figway/operations"
	"github.com/figway/figway/ramp"
)

// Options are what an App takes beside the routes file.
type Options struct {
	// Logger receives every log line. If Logger is nil, nothing is logged.
	Logger *slog.Logger
	// AccessLog logs every successful call too; failed calls are always
	// logged.
	AccessLog bool
	// Pprof serves Go profiles under /debug/pprof/ on the admin listener.
	Pprof bool
	// Version is figway's version, for the figway_build_info metric, the
	// status page and the OpenAPI document.
	Version string
}

// App is one figway, built from a routes file. Run serves it once.
type App struct {
	path string
	cfg  *config.Config
	log  *slog.Logger
	opts Options

	ingressTLS *tls.Config
	keys       *auth.Keys // the JWT key sets of the routes with auth
	client     *amqp.Client
	gw         *gateway.Gateway
	legacyGRPC *legacy.GRPC // nil without legacy.grpc
	ops        *operations.Store
	opLog      *amqp.OperationLog
	ramps      *ramp.Controller // nil when no route ramps
	rampLog    *amqp.RampLog
	grpc       *grpcin.Server
	health     interface {
		SetServingStatus(string, healthpb.HealthCheckResponse_ServingStatus)
		Shutdown()
	}
	rest      *httpin.Server
	metrics   *metrics.Metrics
	configLog *statuspage.ConfigLog
	reloader  *reloader
	draining  atomic.Bool
	tracer    *tracer // nil: tracing off
}

// New builds the figway of cfg, the routes file at path loaded. It opens
// no listener and starts nothing: Run does.
func New(path string, cfg *config.Config, o Options) (*App, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &App{path: path, cfg: cfg, log: o.Logger, opts: o}
	a.keys = auth.NewKeys(auth.Timing{}, a.log)
	table, err := cfg.ServingTable(nil, a.keys)
	if err != nil {
		return nil, err
	}
	if a.tracer, err = newTracer(os.Getenv, a.log); err != nil {
		return nil, err
	}
	a.log = a.tracer.logger(a.log)
	if a.ingressTLS, err = serverTLS(cfg); err != nil {
		return nil, err
	}
	a.metrics = a.newMetrics()
	a.tracer.metrics(a.metrics)
	legacyGRPC, err := a.newGateway(table)
	if err != nil {
		return nil, err
	}
	a.newOperations()
	a.grpc = a.newGRPC(legacyGRPC)
	if a.rest, err = a.newREST(); err != nil {
		a.closeLegacy()
		return nil, err
	}
	a.configLog = statuspage.NewConfigLog(watchList(path, cfg))
	a.reloader = newReloader(a, cfg)
	return a, nil
}

// newMetrics makes figway's metrics; their sources are read at scrape
// time, once New has made everything they read.
func (a *App) newMetrics() *metrics.Metrics {
	return metrics.New(a.opts.Version, metrics.Sources{
		Table:     func() *gateway.Table { return a.gw.Table() },
		Broker:    func() metrics.BrokerStats { return brokerStats(a.client.Stats()) },
		Ready:     a.ready,
		Migration: func(method string) gateway.Migration { return a.gw.Migration(method) },
		Operations: func() (operations.Stats, bool) {
			if a.ops == nil {
				return operations.Stats{}, false
			}
			return a.ops.Stats(), true
		},
		Consumers: func(method string) (int, bool) { return a.gw.RouteConsumers(method) },
		Edge:      func(method string) gateway.Edge { return a.gw.Edge(method) },
		KeySets:   a.keys.States,
	})
}

// newGateway makes the AMQP client, the legacy gRPC upstream if there is
// one, and the gateway on table; it returns the handler of the gRPC calls
// that no route takes (nil without a legacy gRPC upstream).
func (a *App) newGateway(table *gateway.Table) (legacyGRPC grpc.StreamHandler, err error) {
	cfg := a.cfg
	broker, err := BrokerConfig(cfg)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	broker.Name, broker.Logger, broker.OnConfirm = "figway "+host, a.log, a.metrics.ObserveConfirm
	broker.Tracing = a.tracer != nil
	a.client = amqp.New(broker)
	gwOpts := gateway.Options{Publisher: a.client, Table: table, Source: "figway://" + host, Logger: a.log, Tracer: a.tracer.tracer()}
	// Ramped routes keep their state on a stream (docs/migration.md,
	// "Ramps"); without one, nothing is declared.
	a.newRamps(cfg.RampStream())
	if a.ramps != nil {
		gwOpts.Ramps = a.ramps
	}
	a.metrics.Ramps(func() *gateway.Table { return a.gw.Table() }, a.rampSource())
	if cfg.Legacy.GRPC != "" {
		if a.legacyGRPC, err = legacy.DialGRPC(cfg.Legacy.GRPC, a.tracer.legacyGRPC()...); err != nil {
			return nil, err
		}
		legacyGRPC, gwOpts.Legacy = a.legacyGRPC.Proxy, a.legacyGRPC
	}
	a.gw = gateway.New(gwOpts)
	return legacyGRPC, nil
}

// newOperations makes the store of async operations and its stream when a
// route is async (docs/rest.md, "Long calls"); without one, nothing is
// declared.
func (a *App) newOperations() {
	cfg := a.cfg
	if retention := cfg.AsyncRetention(); retention > 0 {
		a.opLog = a.client.NewOperationLog(amqp.LogConfig{Stream: cfg.Server.Operations.Stream, Retention: retention})
		a.ops = operations.New(operations.Config{Log: a.opLog, Max: cfg.Server.Operations.Max,
			MaxBytes: int64(cfg.Server.Operations.MaxBytes), Key: cfg.Server.Operations.Key, Logger: a.log})
	}
}

// newGRPC makes the gRPC ingress, with health, live reflection and the
// operations service; legacyGRPC serves the calls no route takes.
func (a *App) newGRPC(legacyGRPC grpc.StreamHandler) *grpcin.Server {
	cfg := a.cfg
	return grpcin.New(a.gw, grpcin.Options{
		MaxRequestBytes: cfg.Server.MaxRequestBytes,
		MaxHeaderBytes:  cfg.Server.MaxHeaderBytes,
		IdleTimeout:     cfg.Server.IdleTimeout,
		Logger:          a.log,
		Legacy:          legacyGRPC,
		AccessLog:       a.opts.AccessLog,
		ServerOptions:   append(grpcServerOptions(a.metrics, a.gw, a.ingressTLS), a.tracer.serverOptions()...),
		Register: func(s *grpc.Server) {
			a.health = grpcin.RegisterHealth(s)
			// Reflection follows reloads: it answers from the table serving.
			files := func() *protoregistry.Files { return a.gw.Table().Files() }
			if a.ops != nil {
				grpcin.RegisterOperations(s, a.ops, a.gw.Table)
				files = grpcin.WithOperationsFiles(files)
			}
			grpcin.RegisterLiveReflection(s, files)
		},
	})
}

// newREST makes the REST ingress, with the passthrough to the legacy REST
// service if there is one.
func (a *App) newREST() (*httpin.Server, error) {
	cfg := a.cfg
	var legacyHTTP http.Handler // REST calls that no binding takes
	if cfg.Legacy.HTTP != "" {
		var err error
		if legacyHTTP, err = legacy.NewHTTP(cfg.Legacy.HTTP, a.log, a.tracer.legacyHTTP()...); err != nil {
			return nil, err
		}
	}
	restOpts := RESTOptions(cfg, a.opts.Version)
	restOpts.Logger, restOpts.Passthrough, restOpts.AccessLog = a.log, legacyHTTP, a.opts.AccessLog
	restOpts.Middleware, restOpts.OnRoute = a.tracer.middleware(a.metrics.HTTP), metrics.SetRoute
	restOpts.Tracer = a.tracer.tracer()
	restOpts.Operations, restOpts.OperationsPath, restOpts.CORS = a.ops, cfg.Server.Operations.Path, restCORS(cfg.Server.CORS)
	rest, err := httpin.New(a.gw, restOpts)
	if err != nil {
		return nil, fmt.Errorf("REST bindings: %w", err)
	}
	return rest, nil
}

// ready reports whether figway takes calls: the broker connected and not
// blocking publishers, the operations caught up, and not draining.
func (a *App) ready() bool {
	return !a.draining.Load() && a.client.Ready() && (a.ops == nil || a.ops.Stats().CaughtUp) && (a.ramps == nil || a.ramps.Ready())
}

func (a *App) closeLegacy() {
	if a.legacyGRPC != nil {
		a.legacyGRPC.Close()
	}
}

// Run opens the listeners of server.grpc, server.http and server.admin and
// serves until ctx is cancelled. Shutdown order: readiness goes false, the
// gRPC and REST listeners stop accepting and calls in flight drain (up to
// server.shutdown_grace), the async operations end, then the AMQP client
// stops its reply consumers, closes its channels and its connection. Run
// returns nil after a cancellation, or why figway could not serve. An App
// runs once.
func (a *App) Run(ctx context.Context) error {
	defer a.closeLegacy()
	grpcLis, httpLis, adminLis, maxConns, err := a.listen()
	if err != nil {
		return err
	}
	stop := a.background(adminLis)
	a.log.Info("figway serving", "grpc", grpcLis.Addr().String(), "http", httpLis.Addr().String(), "max_connections", maxConns,
		"admin", adminLis.Addr().String(), "tls", a.ingressTLS != nil, "routes", len(a.gw.Table().Routes()), "version", a.opts.Version)
	err = a.serveIngresses(ctx, grpcLis, httpLis)
	stop()
	a.tracer.shutdown()
	a.log.Info("figway stopped")
	return err
}

// listen opens the three listeners. Each ingress holds at most
// max_connections open, so that slow or idle clients of one cannot take
// the descriptors the other, the broker connection and reloads need. TLS
// goes over the cap: net/http finds the handshake, ALPN and client
// certificates only on a *tls.Conn.
func (a *App) listen() (grpcLis, httpLis, adminLis net.Listener, maxConns int, err error) {
	cfg := a.cfg
	lis, err := listenAll(
		func() (net.Listener, error) { return net.Listen("tcp", cfg.Server.GRPC) },
		func() (net.Listener, error) { return net.Listen("tcp", cfg.Server.HTTP) },
		func() (net.Listener, error) { return net.Listen("tcp", cfg.Server.Admin) },
	)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	maxConns = cfg.Server.MaxConnections
	if maxConns == 0 {
		maxConns = connlimit.Default(2)
	}
	grpcCapped, httpCapped := connlimit.New(lis[0], maxConns), connlimit.New(lis[1], maxConns)
	a.metrics.Connections("grpc", grpcCapped.Open, maxConns)
	a.metrics.Connections("http", httpCapped.Open, maxConns)
	return grpcCapped, withTLS(httpCapped, a.ingressTLS), lis[2], maxConns, nil
}

// statusPage is the migration status page of the admin listener.
func (a *App) statusPage(adminLis net.Listener) *statuspage.Page {
	return statuspage.New(statuspage.Options{
		Gatherer:  a.metrics.Registry(),
		Table:     a.gw.Table,
		Migration: a.gw.Migration,
		Broker: func() []statuspage.Connection {
			s := a.client.Stats()
			node := s.Node // the node it reached; while it reaches none, those it tries
			if node == "" {
				node = brokerNodes(a.cfg.Broker.URLs)
			}
			return []statuspage.Connection{{Node: node, Connected: s.Connected, Blocked: s.Blocked, Reconnects: s.Reconnects}}
		},
		Config:  a.configLog.State,
		Ramps:   a.statusRamps,
		Version: a.opts.Version,
		Exposed: !loopback(adminLis.Addr()),
		Logger:  a.log,
	})
}

// background starts what runs beside the ingresses: the AMQP client, the
// shadow copies, the JWT key sets, the async operations and the ramps with
// their streams, the admin listener (with the ramps' endpoints),
// readiness, the status page and the reloader. stop
// ends them: the operations' calls first (their outcome goes to the log),
// then the broker's side, then the admin listener.
func (a *App) background(adminLis net.Listener) (stop func()) {
	status := a.statusPage(adminLis)
	// The admin listener answers probes, scrapes and the status page:
	// nothing it serves takes long, but a CPU profile takes its ?seconds=
	// (30 by default).
	mux := adminMux(a.ready, a.metrics.Handler(), status, a.opts.Pprof)
	a.handleRamps(mux, !loopback(adminLis.Addr()))
	admin := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: adminWriteTimeout, IdleTimeout: time.Minute}
	brokerCtx, stopBroker := context.WithCancel(context.Background())
	opsCtx, stopOps := context.WithCancel(context.Background())
	var wg, opsDone sync.WaitGroup
	wg.Go(func() { a.client.Run(brokerCtx) })
	wg.Go(func() { a.gw.Run(brokerCtx) })   // shadow copies
	wg.Go(func() { a.keys.Run(brokerCtx) }) // JWT key sets, read and refreshed
	if a.ops != nil {
		wg.Go(func() { a.opLog.Run(brokerCtx, a.ops) })
		opsDone.Go(func() { a.ops.Run(opsCtx) })
	}
	if a.ramps != nil {
		wg.Go(func() { a.rampLog.Run(brokerCtx, a.ramps) })
		wg.Go(func() { a.ramps.Run(brokerCtx) })
	}
	wg.Go(func() {
		if err := admin.Serve(adminLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin listener", "err", err)
		}
	})
	wg.Go(func() { watchReadiness(brokerCtx, a.ready, a.health.SetServingStatus, a.log) })
	wg.Go(func() { status.Run(brokerCtx) })
	wg.Go(func() { a.reloader.run(brokerCtx) })
	return func() {
		stopOps()
		opsDone.Wait()
		stopBroker()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		admin.Shutdown(shutdownCtx)
		cancel()
		wg.Wait()
	}
}

// serveIngresses serves gRPC and REST until ctx is cancelled, then drains
// both in parallel. Readiness goes false before the listeners stop
// accepting: the ingresses watch ingressCtx, cancelled only once draining
// is set. One that fails stops the other.
func (a *App) serveIngresses(ctx context.Context, grpcLis, httpLis net.Listener) error {
	grace := a.cfg.Server.ShutdownGrace
	ingressCtx, stopIngress := context.WithCancel(context.Background())
	defer stopIngress()
	go func() {
		select {
		case <-ctx.Done():
		case <-ingressCtx.Done():
			return // an ingress failed
		}
		a.draining.Store(true)
		a.health.Shutdown() // NOT_SERVING for every service
		a.log.Info("draining", "grace", grace.String())
		stopIngress()
	}()
	restErr := make(chan error, 1)
	go func() {
		defer stopIngress()
		restErr <- a.rest.Serve(ingressCtx, httpLis, grace)
	}()
	err := a.grpc.Serve(ingressCtx, grpcLis, grace)
	stopIngress()
	return errors.Join(err, <-restErr)
}

// BrokerConfig is the AMQP client's configuration from the routes file:
// broker and topology. The caller adds its Name, Logger and hooks.
func BrokerConfig(cfg *config.Config) (amqp.Config, error) {
	tc, err := brokerTLS(cfg)
	if err != nil {
		return amqp.Config{}, err
	}
	return amqp.Config{
		URLs:         cfg.Broker.URLs,
		Reply:        cfg.Broker.Reply,
		Channels:     cfg.Broker.Channels,
		Heartbeat:    cfg.Broker.Heartbeat,
		DialTimeout:  cfg.Broker.DialTimeout,
		StallTimeout: cfg.Broker.StallTimeout,
		Topology:     cfg.Topology,
		TLS:          tc,
	}, nil
}

// brokerStats are the AMQP client's counters that metrics reports.
func brokerStats(s amqp.Stats) metrics.BrokerStats {
	return metrics.BrokerStats{Connected: s.Connected, Blocked: s.Blocked, Pending: s.Pending,
		UnmatchedReplies: s.UnmatchedReplies, Reconnects: s.Reconnects, ChannelsRenewed: s.ChannelsRenewed,
		Stalls: s.Stalls, ChannelsStuck: s.ChannelsStuck}
}
