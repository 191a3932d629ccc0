package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/broker"
	"github.com/figway/figway/worker"
)

// figwayProc is figway running as its own process, as in production.
type figwayProc struct {
	cmd               *exec.Cmd
	grpc, http, admin string
	log               string
}

const routesTmpl = `%s
server: {grpc: %q, http: %q, admin: %q, max_request_bytes: 1048576}
descriptors: [%s]
broker: {url: %q, channels: %d}
defaults: {timeout: 30s, max_in_flight: 20000}
routes:
  - {method: orders.v1.OrderService/GetOrder, routing_key: bench.figway}
  - {method: orders.v1.OrderService/PlaceOrder, routing_key: bench.events, pattern: event}
  - {method: orders.v1.OrderService/ListOrders, routing_key: bench.slow}
  - {method: orders.v1.OrderService/CancelOrder, routing_key: bench.echo}
  - {method: orders.v1.OrderService/ExportOrders, routing_key: bench.echo-ack}
  - {method: orders.v1.OrderService/WatchOrder, routing_key: bench.stream, http: {get: "/v1/orders/{order_id}:watch"}%s}
topology:
  queues: [{name: bench.figway}, {name: bench.events}, {name: bench.slow}]
`

// freeAddr returns a loopback address for a listener of a process the
// bench starts, with a port from broker.FreePort: outside the
// kernel's ephemeral range, so no outgoing connection takes it first.
func freeAddr() string {
	port, err := broker.FreePort()
	if err != nil {
		panic(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// startFigway builds cmd/figway and runs it against url, with env added
// to the bench's environment. Each figway has its files of its own in dir.
// With legacy (a gRPC address) set, figway passes calls through to it
// that its pin header, x-bench-pin, sends there.
func startFigway(dir, url string, channels int, legacy string, env ...string) (*figwayProc, error) {
	dir, err := os.MkdirTemp(dir, "figway-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "figway")
	build := exec.Command("go", "build", "-o", bin, "./cmd/figway")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build figway: %w", err)
	}
	desc, err := filepath.Abs("examples/orders/orders.binpb")
	if err != nil {
		return nil, err
	}
	p := &figwayProc{grpc: freeAddr(), http: freeAddr(), admin: freeAddr(), log: filepath.Join(dir, "figway.log")}
	cfg := filepath.Join(dir, "figway.yaml")
	var legacyCfg, pin string
	if legacy != "" {
		legacyCfg, pin = fmt.Sprintf("legacy: {grpc: %q}", legacy), ", pin_by: x-bench-pin"
	}
	if err := os.WriteFile(cfg, fmt.Appendf(nil, routesTmpl, legacyCfg, p.grpc, p.http, p.admin, desc, url, channels, pin), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, "serve", "-config", cfg, "-log-level", "warn", "-pprof")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + p.admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(end) {
			p.stop()
			b, _ := os.ReadFile(p.log)
			return nil, fmt.Errorf("figway not ready after 20s:\n%s", b)
		}
	}
}

func (p *figwayProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// peakRSS reads figway's peak resident set (VmHWM) in bytes.
func (p *figwayProc) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb * 1024
		}
	}
	return 0
}

// goroutines reads figway's goroutine count from its pprof endpoint.
func (p *figwayProc) goroutines() int {
	resp, err := http.Get("http://" + p.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var n int
	if _, err := fmt.Fscanf(resp.Body, "goroutine profile: total %d", &n); err != nil {
		return -1
	}
	return n
}

// metric reads an unlabelled gauge from figway's /metrics; -1 if it can't.
func (p *figwayProc) metric(name string) float64 {
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// startWorkers runs the rest of the figway scenarios' service side, in
// the bench's process: an SDK worker answering ListOrders after hold (the
// holding test), and a consumer draining the events.
func startWorkers(ctx context.Context, url string, hold time.Duration) (stop func(), err error) {
	log := slog.New(slog.DiscardHandler)
	slow := worker.New(worker.Config{URL: url, Queue: "bench.slow", Concurrency: 12000, Prefetch: 12000, Logger: log})
	worker.Handle(slow, "orders.v1.OrderService/ListOrders", func(ctx context.Context, _ *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
		select {
		case <-time.After(hold):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &ordersv1.ListOrdersResponse{}, nil
	})
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { slow.Run(ctx) })
	if err := waitConsuming([]*worker.Worker{slow}); err != nil {
		cancel()
		wg.Wait()
		return nil, err
	}

	conn, err := amqp.Dial(url)
	if err != nil {
		cancel()
		wg.Wait()
		return nil, err
	}
	ch, _ := conn.Channel()
	ds, err := ch.Consume("bench.events", "", true, false, false, false, nil)
	if err != nil {
		cancel()
		wg.Wait()
		conn.Close()
		return nil, err
	}
	go func() {
		for range ds {
		}
	}()
	return func() { cancel(); wg.Wait(); conn.Close() }, nil
}
