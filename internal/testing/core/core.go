// Package core runs figway's core in-process for the ingress tests: a
// routes file written from a template, its route table, the AMQP client
// (configured as internal/app configures it) and the gateway, running until
// the test ends. Each ingress test adds its own listener in front; tests
// that want the whole figway run internal/app.
package core

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/figway/figway/adapters/amqp"
	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/app"
	"github.com/figway/figway/internal/testing/poll"
)

// Core is figway's core, running.
type Core struct {
	Config  *config.Config
	Path    string // of the routes file, for reloads
	AMQP    *amqp.Client
	Gateway *gateway.Gateway
}

// Load writes routes — with BROKER replaced by brokerURL and DESCRIPTORS by
// the absolute path of descriptors — to a file and loads it. It returns the
// configuration and the file's path.
func Load(t testing.TB, routes, brokerURL, descriptors string) (*config.Config, string) {
	t.Helper()
	desc, err := filepath.Abs(descriptors)
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.NewReplacer("BROKER", brokerURL, "DESCRIPTORS", desc).Replace(routes)
	path := filepath.Join(t.TempDir(), "figway.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	return cfg, path
}

// Start loads routes as Load does and runs the AMQP client and the gateway
// (with legacy as its Legacy port, if not nil) until the test ends. It
// returns once the client is ready.
func Start(t testing.TB, routes, brokerURL, descriptors string, legacy gateway.Legacy) *Core {
	t.Helper()
	cfg, path := Load(t, routes, brokerURL, descriptors)
	table, err := cfg.Table(nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	broker, err := app.BrokerConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	broker.Logger = log
	ac := amqp.New(broker)
	opts := gateway.Options{Publisher: ac, Table: table, Source: "figway://test", Logger: log}
	if legacy != nil {
		opts.Legacy = legacy
	}
	gw := gateway.New(opts)

	ctx, cancel := context.WithCancel(context.Background())
	amqpDone, gwDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(amqpDone); ac.Run(ctx) }()
	go func() { defer close(gwDone); gw.Run(ctx) }() // shadow copies
	// Registered first, so it runs after the cleanups of the ingress the
	// test puts in front: the core outlives the calls it serves.
	t.Cleanup(func() {
		cancel()
		<-gwDone
		<-amqpDone
	})
	poll.Until(t, 10*time.Second, "AMQP client ready", ac.Ready)
	return &Core{Config: cfg, Path: path, AMQP: ac, Gateway: gw}
}

// Serve runs an ingress in front of the core on a loopback listener until
// the test ends: serve is the ingress's Serve with its grace period, which
// returns once ctx ends. Serve returns the listener's address.
func Serve(t testing.TB, serve func(ctx context.Context, lis net.Listener) error) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return lis.Addr().String()
}
