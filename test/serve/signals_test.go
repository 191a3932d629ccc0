package serve

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/calls"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/prom"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// The tests of this file run the real binary: signals are the point.

// TestReloadUnderLoad changes the routes file under a steady load of
// calls: a new route serves within 1 s of the write, an invalid file is
// refused (logged with its field paths, counted) while the old routes
// keep serving, SIGHUP reloads, and no call fails because of any of it.
func TestReloadUnderLoad(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	a := figway.NewAddrs(t)
	path := figway.WriteRoutes(t, "", a, url, nil)
	full, _ := os.ReadFile(path)
	var without []string // the same file without the PlaceOrder route
	for _, l := range strings.Split(string(full), "\n") {
		if !strings.Contains(l, placeOrder) {
			without = append(without, l)
		}
	}
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.Join(without, "\n"))
	w := figway.StartWorker(t, url, nil)
	p := figway.Start(t, path, a)
	fault.WaitConsuming(t, w)

	conn := figway.Dial(t, a.GRPC)
	orders := ordersv1.NewOrderServiceClient(conn)
	place := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := orders.PlaceOrder(ctx, &ordersv1.PlaceOrderRequest{CustomerId: "c-1"})
		return err
	}
	if err := place(); status.Code(err) != codes.Unimplemented {
		t.Fatalf("PlaceOrder before the reload = %v; want Unimplemented", err)
	}
	figway.WarmUp(t, orders)
	metrics := "http://" + a.Admin + "/metrics"
	reloads := func(result string) float64 {
		return prom.Get(t, metrics).Value("figway_config_reloads_total", "result", result)
	}

	// 8 callers until the reloads are over (a minute at the most).
	loadCtx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	l := calls.Start(loadCtx, 8, 1_000_000, func(ctx context.Context, _, _ int) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
		return err
	})
	begin := time.Now()
	time.Sleep(300 * time.Millisecond) // load running before the first change

	// A new route: live within 1 s of the write.
	write(string(full))
	written := time.Now()
	for place() != nil {
		if time.Since(written) > time.Second {
			t.Fatalf("PlaceOrder still fails %v after its route was written", time.Since(written))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("new route served %v after the write", time.Since(written).Round(time.Millisecond))
	if got := reloads("ok"); got != 1 {
		t.Errorf("figway_config_reloads_total{result=ok} = %v; want 1", got)
	}

	// An invalid file: refused, counted, logged with field paths; the
	// running routes keep serving.
	placeLine := ""
	for _, l := range strings.Split(string(full), "\n") {
		if strings.Contains(l, placeOrder) {
			placeLine = l
		}
	}
	write(strings.Replace(string(full), placeLine,
		placeLine+"\n  - {method: orders.v1.OrderService/GetOrdr, routing_key: x, timeout: 5x}", 1))
	written = time.Now()
	poll.Until(t, 2*time.Second, "the invalid file refused", func() bool { return reloads("failed") == 1 })
	t.Logf("invalid file refused %v after the write", time.Since(written).Round(time.Millisecond))
	s := prom.Get(t, metrics)
	if s.Value("figway_config_last_reload_successful") != 0 || s.Value("figway_routes") != 3 {
		t.Errorf("after a refused reload figway_config_last_reload_successful, figway_routes = %v, %v; want 0, 3",
			s.Value("figway_config_last_reload_successful"), s.Value("figway_routes"))
	}
	if err := place(); err != nil {
		t.Errorf("PlaceOrder after a refused reload: %v; want the old routes serving", err)
	}
	refused := p.LogLines("reload refused: routes file invalid; keeping the running routes")
	if len(refused) != 1 {
		t.Fatalf("%d 'reload refused' log lines; want 1", len(refused))
	}
	problems, _ := json.Marshal(refused[0]["problems"])
	for _, want := range []string{"routes[3].method", "routes[3].timeout"} {
		if !strings.Contains(string(problems), want) {
			t.Errorf("the refused reload's log line lacks the field path %s: %s", want, problems)
		}
	}

	// SIGHUP reloads the (now valid again) file once.
	write(string(full))
	poll.Until(t, 2*time.Second, "the valid file reloaded", func() bool { return reloads("ok") == 2 })
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 2*time.Second, "SIGHUP reloaded", func() bool { return reloads("ok") == 3 })
	if got := prom.Get(t, metrics).Value("figway_config_last_reload_successful"); got != 1 {
		t.Errorf("figway_config_last_reload_successful = %v after a good reload; want 1", got)
	}
	time.Sleep(300 * time.Millisecond) // load running after the last change

	stop()
	outs := l.Wait()
	elapsed := time.Since(begin)
	ok, failed := 0, 0
	for _, o := range outs {
		if o.Err == nil {
			ok++
			continue
		}
		if failed++; failed <= 5 {
			t.Errorf("call failed during reloads: %v", o.Err)
		}
	}
	t.Logf("load: %d calls in %v (%.0f/s) across 4 reload attempts, %d failed", ok, elapsed.Round(time.Millisecond),
		float64(ok)/elapsed.Seconds(), failed)
	if ok == 0 {
		t.Error("no call succeeded under load")
	}
	if loadCtx.Err() == context.DeadlineExceeded {
		t.Error("the reloads took over a minute: the load stopped before them")
	}
	// Successful calls are not logged (no -access-log), failed ones are.
	if n := len(p.LogLines("call")); n != 0 {
		t.Errorf("%d access log lines without -access-log; want 0", n)
	}
	if strings.Contains(p.Log.String(), "guest:guest@") {
		t.Error("figway's log shows the broker's credentials")
	}
}

// TestSIGTERMDuringLoad sends SIGTERM while calls are in flight: readiness
// goes false, new calls are refused, the calls in flight complete, and the
// process exits 0 within the grace period. With -access-log, every
// successful call has its log line.
func TestSIGTERMDuringLoad(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	a := figway.NewAddrs(t)
	path := figway.WriteRoutes(t, "", a, url, nil) // shutdown_grace: 3s
	w := figway.StartWorker(t, url, nil)
	p := figway.Start(t, path, a, "-access-log")
	fault.WaitConsuming(t, w)

	conn := figway.Dial(t, a.GRPC)
	orders := ordersv1.NewOrderServiceClient(conn)
	figway.WarmUp(t, orders)
	if code, body := figway.HTTPGet("http://" + a.HTTP + "/v1/orders/o-1"); code != 200 {
		t.Fatalf("REST GetOrder = %d %s", code, body)
	}
	const n = 10
	results := make(chan error, n)
	for range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "slow-1500ms"})
			results <- err
		}()
	}
	metrics := "http://" + a.Admin + "/metrics"
	poll.Until(t, 5*time.Second, "10 calls in flight", func() bool {
		return prom.Get(t, metrics).Value("figway_requests_in_flight", "route", getOrder) == n
	})

	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	poll.Until(t, time.Second, "/readyz 503 while draining", func() bool {
		code, _ := figway.HTTPGet("http://" + a.Admin + "/readyz")
		return code == 503
	})
	// New calls are refused, on a new connection and on the old one.
	// Readiness goes false before the listeners stop accepting (so that a
	// load balancer stops sending first): a call in that moment is still
	// served, and logged. Within a second, every new call is refused.
	newConn, err := grpc.NewClient(a.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer newConn.Close()
	servedLate := 0
	for _, c := range []*grpc.ClientConn{newConn, conn} {
		for begin := time.Now(); ; {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := ordersv1.NewOrderServiceClient(c).GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-new"})
			cancel()
			if status.Code(err) == codes.Unavailable {
				break
			}
			if err != nil || time.Since(begin) > time.Second {
				t.Errorf("a new call %v after /readyz went 503 = %v; want Unavailable", time.Since(sent).Round(time.Millisecond), err)
				break
			}
			servedLate++
			time.Sleep(10 * time.Millisecond)
		}
	}
	if servedLate > 0 {
		t.Logf("%d new calls served in the moment between /readyz 503 and the listeners stopping", servedLate)
	}
	for range n {
		if err := <-results; err != nil {
			t.Errorf("a call in flight at SIGTERM failed: %v", err)
		}
	}
	select {
	case <-p.Exited:
	case <-time.After(3*time.Second + 2*time.Second):
		t.Fatal("figway did not exit within the 3s grace + 2s")
	}
	took := time.Since(sent)
	var exit *exec.ExitError
	if p.Err != nil && errors.As(p.Err, &exit) {
		t.Errorf("figway exited with %v; want 0", p.Err)
	}
	t.Logf("exited 0 %v after SIGTERM (in-flight calls needed ~1.5s, grace 3s)", took.Round(time.Millisecond))
	// 1 warm-up + 10 in flight on gRPC, 1 on REST, and those served late.
	if logged := p.LogLines("call"); len(logged) != 12+servedLate {
		t.Errorf("%d access log lines with -access-log; want %d", len(logged), 12+servedLate)
	}
	for _, msg := range []string{"draining", "figway stopped"} {
		if len(p.LogLines(msg)) != 1 {
			t.Errorf("figway's log lacks a %q line", msg)
		}
	}
}
