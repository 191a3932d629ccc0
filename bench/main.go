// Command bench measures what putting figway in the path costs, against the
// physical floor and the usual hand-written alternative, in one run on one
// broker and machine (make bench). It starts its own RabbitMQ node on
// loopback; every load loop is bounded in time and count.
//
// Scenarios, each at concurrency 1 and 64:
//
//	grpc-echo      a plain grpc-go unary echo server, its own process, called directly
//	grpc-echo-inproc  the same echo server inside the bench's process (reference)
//	amqp-wire      amqp-raw with figway's messages: wire headers, mandatory, confirms (reference)
//	amqp-raw       amqp091-go request-reply, direct reply-to over a few channels, echo responder
//	amqp-raw-ack   amqp-raw against an echo responder that acks manually, as
//	               cheaply as RabbitMQ allows (multiple, gathered): the floor
//	               of an at-least-once worker
//	amqp-tutorial  RabbitMQ's tutorial RPC: a channel and exclusive reply queue per call
//	figway-grpc    gRPC client → figway → RabbitMQ → worker (SDK) → back
//	figway-rest    the same through REST/JSON
//	figway-event   event pattern (publish + confirm) through gRPC
//	figway-grpc-traced  figway-grpc through a figway with tracing on, every
//	               call sampled, spans exported over OTLP to a local receiver
//	figway-rawecho figway-grpc's path with amqp-raw's echo responder in place
//	               of the SDK worker: figway's own cost, apart from the SDK's
//	figway-rawecho-ack  figway-rawecho with amqp-raw-ack's responder: the
//	               floor figway-grpc's SDK workers are measured against
//	bare-bridge    the least a gateway process can do: grpc-go → amqp-wire's
//	               messages → the echo responder → back, nothing else
//	               (bare.go): the floor of figway's CPU per call
//	watermill-bridge  the bridge written by hand with Watermill instead:
//	               grpc-go → Watermill request-reply → RabbitMQ → Watermill
//	               handler → back (watermill.go)
//
// then the streaming scenarios (stream.go), server-streaming calls of
// -stream-messages messages each, directly from grpc-echo, through figway
// to an SDK stream worker over RabbitMQ (gRPC and REST), and through
// figway's legacy passthrough to grpc-echo;
//
// then holding capacity: N concurrent calls waiting on a worker that answers
// after a delay, with figway's peak RSS and goroutine count.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/broker"
	"github.com/figway/figway/worker"
)

func main() {
	dur := flag.Duration("duration", 5*time.Second, "load time per scenario and concurrency")
	payload := flag.Int("payload", 256, "request payload bytes")
	holding := flag.Int("holding", 10000, "concurrent calls in the holding test (0 skips it)")
	hold := flag.Duration("hold", 2*time.Second, "how long the worker holds each call in the holding test")
	channels := flag.Int("channels", 4, "AMQP channels of figway and of amqp-raw")
	profile := flag.String("profile", "", "if set, write figway's CPU profile during figway-grpc c=64 to this file, and its allocation profile after figway-grpc to this file + .allocs; the SDK workers' to this file + .worker and .worker.allocs")
	trace := flag.String("trace", "", "if set, write figway's execution trace of 1s of figway-grpc c=1 to this file (go tool trace)")
	only := flag.String("only", "", "comma-separated scenarios to run (default: all)")
	streamMessages := flag.Int("stream-messages", 1000, "messages of each stream in the streaming scenarios")
	flag.Parse()
	if addr := os.Getenv(echoEnv); addr != "" {
		exitServingEcho(addr)
	}
	if spec := os.Getenv(watermillEnv); spec != "" {
		exitServingWatermill(spec)
	}
	if spec := os.Getenv(bareEnv); spec != "" {
		exitServingBare(spec)
	}
	if spec := os.Getenv(serviceEnv); spec != "" {
		exitServingService(spec)
	}
	if *only != "" {
		for _, s := range strings.Split(*only, ",") {
			selected[strings.TrimSpace(s)] = true
		}
	}
	if *streamMessages < 1 {
		fmt.Fprintln(os.Stderr, "bench: -stream-messages must be at least 1")
		os.Exit(2)
	}
	if err := run(os.Stdout, *dur, *payload, *holding, *hold, *channels, *streamMessages, *profile, *trace); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, dur time.Duration, payload, holding int, hold time.Duration, channels, streamMessages int, profile, trace string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "figway-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(out, "machine: %d CPU (GOMAXPROCS %d), %s; payload %d B; %v per scenario\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), payload, dur)
	node, err := broker.Start(ctx)
	if err != nil {
		return fmt.Errorf("start RabbitMQ: %w", err)
	}
	defer node.Close()
	url := node.URL()

	id := strings.Repeat("x", payload)
	var results []result
	ps := &procs{broker: node.PID()}
	measure := func(name string, call func(context.Context) error) {
		results = append(results, scenario(name, dur, ps, call)...)
	}
	if err := measureEchoes(id, ps, measure); err != nil {
		return err
	}
	// The service process: the raw echo responders and the SDK workers.
	svc, err := startService(url, channels, streamMessages)
	if err != nil {
		return err
	}
	defer svc.stop()
	ps.worker = svc.pid
	if err := measureAMQP(url, channels, []byte(id), measure); err != nil {
		return err
	}

	// 4–6. figway, as its own process.
	fw, stop, err := startFigwayAndWorkers(ctx, dir, url, channels, hold, ps)
	if err != nil {
		return err
	}
	defer stop()
	acks, err := measureFigway(fw, svc, id, dur, profile, trace, measure)
	if err != nil {
		return err
	}
	if err := measureTraced(dir, url, channels, id, ps, measure); err != nil {
		return err
	}
	if err := measureBridges(url, channels, id, ps, measure); err != nil {
		return err
	}
	streams, err := measureStreams(dir, url, dur, channels, streamMessages, id, ps)
	if err != nil {
		return err
	}
	report(out, results, streams, streamMessages, measureHolding(fw, holding, hold), acks)
	return nil
}

// maxCalls bounds the calls of one scenario at one concurrency.
const maxCalls = 2_000_000

// scenario runs call as the scenario name at concurrency 1 and 64, dur
// each, unless -only leaves it out, with the CPU each process of ps spent
// per call; it prints each result as it comes.
func scenario(name string, dur time.Duration, ps *procs, call func(context.Context) error) []result {
	if len(selected) > 0 && !selected[name] {
		return nil
	}
	var rs []result
	for _, c := range []int{1, 64} {
		before := ps.now()
		r := load(name, c, dur, maxCalls, call)
		r.cpu = ps.now().perCall(before, r.calls)
		rs = append(rs, r)
		fmt.Fprintf(os.Stderr, "  %-16s c=%-3d %8.0f calls/s  p50 %-10v p99 %-10v errors %d  cpu/call %.0fµs\n",
			name, c, r.rps(), r.p50, r.p99, r.errors, r.cpu.total())
	}
	return rs
}

// measureEchoes runs 1. grpc-echo, in its own process as figway is, and
// grpc-echo-inproc, in this process.
func measureEchoes(id string, ps *procs, measure func(string, func(context.Context) error)) error {
	for _, e := range []struct {
		name  string
		start func() (addr string, pid int, stop func(), err error)
	}{{"grpc-echo", startEchoProcess}, {"grpc-echo-inproc", startEcho}} {
		if len(selected) > 0 && !selected[e.name] {
			continue
		}
		addr, pid, stop, err := e.start()
		if err != nil {
			return err
		}
		conn, err := dialGRPC(addr)
		if err != nil {
			stop()
			return err
		}
		ps.echo = pid
		echo := ordersv1.NewOrderServiceClient(conn)
		measure(e.name, func(ctx context.Context) error {
			_, err := echo.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: id})
			return err
		})
		ps.echo = 0
		conn.Close()
		stop()
	}
	return nil
}

// measureAMQP runs 2. amqp-raw, amqp-wire, amqp-raw-ack and 3.
// amqp-tutorial against the service process's echo responders.
func measureAMQP(url string, channels int, body []byte, measure func(string, func(context.Context) error)) error {
	for _, s := range []struct {
		name, queue string
		wire        bool
	}{{"amqp-raw", rawQueue, false}, {"amqp-wire", rawQueue, true}, {"amqp-raw-ack", ackQueue, false}} {
		if len(selected) > 0 && !selected[s.name] {
			continue
		}
		raw, err := newRawClient(url, channels, s.wire)
		if err != nil {
			return err
		}
		measure(s.name, func(ctx context.Context) error { return raw.call(ctx, s.queue, body) })
		raw.conn.Close()
	}
	tconn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer tconn.Close()
	var seq atomic.Uint64
	measure("amqp-tutorial", func(ctx context.Context) error { return tutorialCall(ctx, tconn, rawQueue, body, &seq) })
	return nil
}

// startFigwayAndWorkers runs figway as a process of its own, its CPU
// counted in ps, and the SDK workers, which hold each call of the holding
// test hold; stop stops them.
func startFigwayAndWorkers(ctx context.Context, dir, url string, channels int, hold time.Duration, ps *procs) (fw *figwayProc, stop func(), err error) {
	fw, err = startFigway(dir, url, channels, "")
	if err != nil {
		return nil, nil, err
	}
	ps.figway = fw.cmd.Process.Pid
	stopWorkers, err := startWorkers(ctx, url, hold)
	if err != nil {
		fw.stop()
		return nil, nil, err
	}
	return fw, func() { stopWorkers(); fw.stop() }, nil
}

// measureFigway runs the scenarios through fw: figway-grpc (profiled as
// profile and trace ask), figway-rest, figway-rawecho(-ack) and
// figway-event. It returns what the SDK workers replied and acked during
// figway-grpc.
func measureFigway(fw *figwayProc, svc *service, id string, dur time.Duration, profile, trace string, measure func(string, func(context.Context) error)) (worker.Stats, error) {
	fconn, err := dialGRPC(fw.grpc)
	if err != nil {
		return worker.Stats{}, err
	}
	defer fconn.Close()
	fc := ordersv1.NewOrderServiceClient(fconn)
	getOrder := getOrderCall(fc, id)
	getOrder(context.Background()) // warm up: the worker may still be connecting
	acks := measureProfiled(fw, svc, dur, profile, trace, func() { measure("figway-grpc", getOrder) })
	measureREST(fw.http, id, measure)
	// CancelOrderRequest{order_id, reason} echoed reads as Order{order_id,
	// customer_id}: the raw responder can answer it as it is.
	measure("figway-rawecho", func(ctx context.Context) error {
		o, err := fc.CancelOrder(ctx, &ordersv1.CancelOrderRequest{OrderId: id})
		if err == nil && len(o.GetOrderId()) != len(id) {
			return fmt.Errorf("wrong reply")
		}
		return err
	})
	// ExportOrders goes to the manual-ack responder (routesTmpl); the
	// request is figway-grpc's, and so is the echo read back.
	measure("figway-rawecho-ack", func(ctx context.Context) error {
		o := new(ordersv1.Order)
		err := fconn.Invoke(ctx, ordersv1.OrderService_ExportOrders_FullMethodName, &ordersv1.GetOrderRequest{OrderId: id}, o)
		if err == nil && len(o.GetOrderId()) != len(id) {
			return fmt.Errorf("wrong reply")
		}
		return err
	})
	measure("figway-event", func(ctx context.Context) error {
		_, err := fc.PlaceOrder(ctx, &ordersv1.PlaceOrderRequest{CustomerId: id})
		return err
	})
	return acks, nil
}

// measureProfiled runs measure, figway-grpc, with figway's and the SDK
// workers' profiles and figway's trace saved as profile and trace ask,
// and returns what the SDK workers replied and acked meanwhile. The c=1
// run comes first: the trace is of it, the CPU profile of the c=64 run
// that follows.
func measureProfiled(fw *figwayProc, svc *service, dur time.Duration, profile, trace string, measure func()) worker.Stats {
	var profiled sync.WaitGroup
	if profile != "" {
		cpu := fmt.Sprintf("profile?seconds=%d", int(dur.Seconds())-1)
		profiled.Go(func() { fetch(fw.admin, profile, cpu, dur+200*time.Millisecond) })
		profiled.Go(func() { fetch(svc.addr, profile+".worker", cpu, dur+200*time.Millisecond) })
	}
	if trace != "" {
		profiled.Go(func() { fetch(fw.admin, trace, "trace?seconds=1", 200*time.Millisecond) })
	}
	before := svc.stats()
	measure()
	profiled.Wait()
	if profile != "" { // allocations since the start, mostly figway-grpc's calls
		fetch(fw.admin, profile+".allocs", "allocs", 0)
		fetch(svc.addr, profile+".worker.allocs", "allocs", 0)
	}
	acks := svc.stats()
	acks.Replied -= before.Replied
	acks.Acks -= before.Acks
	return acks
}

// measureREST runs figway-rest against figway's REST ingress at addr.
func measureREST(addr, id string, measure func(string, func(context.Context) error)) {
	if !restUp(addr) {
		fmt.Fprintln(os.Stderr, "  figway-rest    n/a: figway serves no REST ingress on", addr)
		return
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	path := "http://" + addr + "/v1/orders/" + id
	measure("figway-rest", func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	})
}

// measureBridges runs bare-bridge and watermill-bridge.
func measureBridges(url string, channels int, id string, ps *procs, measure func(string, func(context.Context) error)) error {
	if err := measureBridge("bare-bridge", func() (string, int, func(), error) { return startBareBridge(url, channels) }, id, ps, measure); err != nil {
		return err
	}
	return measureWatermill(url, channels, id, ps, measure)
}

// measureHolding runs the holding test, holding calls at once, unless
// holding is 0; figway's log is printed if a call failed.
func measureHolding(fw *figwayProc, holding int, hold time.Duration) holdResult {
	if holding <= 0 {
		return holdResult{}
	}
	hr := holdCalls(fw, holding, hold)
	if hr.ok < hr.calls {
		if b, err := os.ReadFile(fw.log); err == nil {
			fmt.Fprintf(os.Stderr, "figway's log:\n%s\n", b)
		}
	}
	return hr
}

// measureWatermill runs the watermill-bridge scenario: the bridge in a
// process of its own, and as many Watermill workers as figway's scenarios
// have SDK workers.
func measureWatermill(url string, workers int, id string, ps *procs, measure func(string, func(context.Context) error)) error {
	const name = "watermill-bridge"
	if len(selected) > 0 && !selected[name] {
		return nil
	}
	stopWorkers, err := startWatermillWorkers(url, workers)
	if err != nil {
		return err
	}
	defer stopWorkers()
	return measureBridge(name, func() (string, int, func(), error) { return startWatermillBridge(url) }, id, ps, measure)
}

// measureBridge runs the scenario name against a bridge that start runs
// as a process of its own, with the bridge's CPU in the gateway column.
func measureBridge(name string, start func() (addr string, pid int, stop func(), err error), id string, ps *procs, measure func(string, func(context.Context) error)) error {
	if len(selected) > 0 && !selected[name] {
		return nil
	}
	addr, pid, stop, err := start()
	if err != nil {
		return err
	}
	defer stop()
	conn, err := dialGRPC(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	call := getOrderCall(ordersv1.NewOrderServiceClient(conn), id)
	call(context.Background()) // warm up: connections, topology
	figway := ps.figway
	ps.figway = pid
	measure(name, call)
	ps.figway = figway
	return nil
}

// getOrderCall returns a call of GetOrder(id) through c that checks the
// echoed reply.
func getOrderCall(c ordersv1.OrderServiceClient, id string) func(context.Context) error {
	return func(ctx context.Context) error {
		o, err := c.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: id})
		if err == nil && len(o.GetOrderId()) != len(id) {
			return fmt.Errorf("wrong reply")
		}
		return err
	}
}

// selected holds the scenarios of -only; empty runs them all.
var selected = map[string]bool{}

func restUp(addr string) bool {
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// fetch saves what /debug/pprof/<what> on addr (figway's admin listener,
// the service process's) serves to path, asking after delay.
func fetch(addr, path, what string, delay time.Duration) {
	time.Sleep(delay)
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s", addr, what))
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer f.Close()
	io.Copy(f, resp.Body)
}

func find(rs []result, name string, conc int) (result, bool) {
	for _, r := range rs {
		if r.scenario == name && r.conc == conc {
			return r, true
		}
	}
	return result{}, false
}

// report prints the results: the table of the scenarios, that of the
// streaming scenarios, the first errors, the holding test and the SDK
// workers' acks, then how the scenarios compare.
func report(w io.Writer, rs []result, srs []streamResult, messages int, hr holdResult, acks worker.Stats) {
	reportTable(w, rs)
	if len(srs) > 0 {
		reportStreams(w, srs, messages)
	}
	for _, r := range rs {
		if r.firstErr != nil {
			fmt.Fprintf(w, "first error of %s c=%d: %v\n", r.scenario, r.conc, r.firstErr)
		}
	}
	for _, r := range srs {
		if r.firstErr != nil {
			fmt.Fprintf(w, "first error of %s c=%d: %v\n", r.scenario, r.conc, r.firstErr)
		}
	}
	reportHolding(w, hr, acks)
	reportRatios(w, rs)
}

func reportTable(w io.Writer, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tc\tcalls\terrors\tcalls/s\tp50\tp99\tcpu:gateway\tcpu:broker\tcpu:worker\tcpu:other\tcpu:all\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%v\t%v\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", r.scenario, r.conc, r.calls, r.errors, r.rps(),
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.cpu.figway, r.cpu.broker, r.cpu.worker, r.cpu.other, r.cpu.total())
	}
	tw.Flush()
	fmt.Fprintln(w, "cpu: µs of CPU time (user+system) per call, of the gateway (figway; the bridge in bare-bridge and watermill-bridge), of the broker, of the worker (the process of the SDK workers and the raw responders), and of the rest (load generator, echo server, Watermill workers)")
}

func reportHolding(w io.Writer, hr holdResult, acks worker.Stats) {
	if hr.calls > 0 {
		fmt.Fprintf(w, "holding: %d concurrent calls held %v: %d ok, %d failed, all answered in %v; figway peak RSS %.1f MiB, %d goroutines and %.1f MiB of their stacks while holding\n",
			hr.calls, hr.hold, hr.ok, hr.calls-hr.ok, hr.took.Round(time.Millisecond), float64(hr.rss)/(1<<20), hr.goroutines, hr.stack/(1<<20))
		if hr.firstErr != nil {
			fmt.Fprintf(w, "holding: first error: %v\n", hr.firstErr)
		}
	}
	if acks.Replied > 0 {
		fmt.Fprintf(w, "SDK workers in figway-grpc: %d replies, %d basic.ack frames (%.2f per reply)\n",
			acks.Replied, acks.Acks, float64(acks.Acks)/float64(acks.Replied))
	}
}

// reportRatios prints how figway compares with the ideal, the floors and
// the alternatives, and the line of ratios docs/performance.md quotes.
func reportRatios(w io.Writer, rs []result) {
	echo, _ := find(rs, "grpc-echo", 64)
	raw, _ := find(rs, "amqp-raw", 64)
	tut, _ := find(rs, "amqp-tutorial", 64)
	fg, _ := find(rs, "figway-grpc", 64)
	fr, haveREST := find(rs, "figway-rest", 64)
	wm, haveWM := find(rs, "watermill-bridge", 64)
	ideal := 1 / (1/echo.rps() + 1/raw.rps())
	e1, _ := find(rs, "grpc-echo", 1)
	r1, _ := find(rs, "amqp-raw", 1)
	f1, _ := find(rs, "figway-grpc", 1)
	fmt.Fprintf(w, "ideal (c=64) = 1/(1/grpc-echo + 1/amqp-raw) = %.0f calls/s\n", ideal)
	fmt.Fprintf(w, "c=1 p50: figway-grpc %v vs grpc-echo + amqp-raw + 100µs = %v\n",
		f1.p50.Round(time.Microsecond), (e1.p50 + r1.p50 + 100*time.Microsecond).Round(time.Microsecond))
	ratio := func(a, b result, ok bool) string {
		if !ok || b.rps() == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f", a.rps()/b.rps())
	}
	if bb, ok := find(rs, "bare-bridge", 64); ok {
		// The floors of the three targets figway is measured against,
		// from the least a gateway process can do (docs/performance.md).
		fe, _ := find(rs, "figway-rawecho", 64)
		b1, _ := find(rs, "bare-bridge", 1)
		fmt.Fprintf(w, "floor (c=64): bare-bridge %.0f calls/s = %.2f of ideal, gateway cpu %.0fµs/call; figway-rawecho %.0f calls/s = %.2f, %.0fµs/call; figway-grpc %.0fµs/call\n",
			bb.rps(), bb.rps()/ideal, bb.cpu.figway, fe.rps(), fe.rps()/ideal, fe.cpu.figway, fg.cpu.figway)
		fmt.Fprintf(w, "floor (c=1): p50 bare-bridge %v, figway-grpc %v\n", b1.p50.Round(time.Microsecond), f1.p50.Round(time.Microsecond))
	}
	if w1, ok := find(rs, "watermill-bridge", 1); ok {
		fmt.Fprintf(w, "c=1 p50: figway-grpc %v vs watermill-bridge %v\n", f1.p50.Round(time.Microsecond), w1.p50.Round(time.Microsecond))
	}
	if t1, ok := find(rs, "figway-grpc-traced", 1); ok {
		t64, _ := find(rs, "figway-grpc-traced", 64)
		fmt.Fprintf(w, "tracing (always sampled, OTLP to a local receiver): figway cpu/call c=64 %.0fµs vs %.0fµs off (%+.1f%%); c=1 p50 %v vs %v off (%+v)\n",
			t64.cpu.figway, fg.cpu.figway, 100*(t64.cpu.figway/fg.cpu.figway-1), t1.p50.Round(time.Microsecond), f1.p50.Round(time.Microsecond),
			(t1.p50 - f1.p50).Round(time.Microsecond))
	}
	ra, haveRA := find(rs, "figway-rawecho-ack", 64)
	if haveRA {
		ra1, _ := find(rs, "figway-rawecho-ack", 1)
		fmt.Fprintf(w, "sdk vs raw-ack (figway-grpc vs figway-rawecho-ack): calls/s c=64 %.0f vs %.0f (%.2f); c=1 p50 %v vs %v (%+v); worker cpu/reply c=64 %.0fµs vs %.0fµs (%.2f)\n",
			fg.rps(), ra.rps(), fg.rps()/ra.rps(), f1.p50.Round(time.Microsecond), ra1.p50.Round(time.Microsecond),
			(f1.p50 - ra1.p50).Round(time.Microsecond), fg.cpu.worker, ra.cpu.worker, fg.cpu.worker/ra.cpu.worker)
	}
	bareCPU := "n/a"
	fe, haveFE := find(rs, "figway-rawecho", 64)
	if bb, ok := find(rs, "bare-bridge", 64); ok && haveFE && bb.cpu.figway > 0 {
		bareCPU = fmt.Sprintf("%.2f", fe.cpu.figway/bb.cpu.figway)
	}
	fmt.Fprintf(w, "efficiency=%.2f vs-tutorial=%.2f rest/grpc=%s vs-watermill=%s cpu-figway-us=%.0f sdk/raw-ack=%s gateway/bare-cpu=%s\n",
		fg.rps()/ideal, fg.rps()/tut.rps(), ratio(fr, fg, haveREST), ratio(fg, wm, haveWM), fg.cpu.figway, ratio(fg, ra, haveRA), bareCPU)
}
