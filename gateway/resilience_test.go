package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/resilience"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
)

const (
	getOrder   = "orders.v1.OrderService/GetOrder"
	placeOrder = "orders.v1.OrderService/PlaceOrder"
)

// table builds a route table from a routes file with the orders example's
// descriptors; routes is the YAML of the routes list.
func table(t testing.TB, routes string, prev *gateway.Table) *gateway.Table {
	t.Helper()
	file := "descriptors: [orders.binpb]\nbroker: {url: \"amqp://guest:guest@127.0.0.1:5672/\"}\nroutes:\n" + routes
	cfg, err := config.Parse([]byte(file), "../examples/orders")
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	tb, err := cfg.Table(prev)
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	return tb
}

// publisher is a gateway.Publisher whose every call runs fn.
type publisher struct {
	calls atomic.Int64
	mu    sync.Mutex
	reqs  []wire.Request
	fn    func(ctx context.Context, n int64, req *wire.Request) (*gateway.Reply, error)
}

func (p *publisher) Call(ctx context.Context, exchange, key string, req *wire.Request) (*gateway.Reply, error) {
	n := p.calls.Add(1)
	p.mu.Lock()
	p.reqs = append(p.reqs, *req)
	p.mu.Unlock()
	return p.fn(ctx, n, req)
}

func (p *publisher) Publish(ctx context.Context, exchange, key string, req *wire.Request) error {
	_, err := p.Call(ctx, exchange, key, req)
	return err
}

func replyOK(context.Context, int64, *wire.Request) (*gateway.Reply, error) {
	return &gateway.Reply{}, nil
}

func failWith(err error) func(context.Context, int64, *wire.Request) (*gateway.Reply, error) {
	return func(context.Context, int64, *wire.Request) (*gateway.Reply, error) { return nil, err }
}

func newGateway(p *publisher, tb *gateway.Table) *gateway.Gateway {
	return gateway.New(gateway.Options{Publisher: p, Table: tb})
}

func call(method string) *gateway.Call {
	return &gateway.Call{Method: method, ContentType: wire.ContentTypeProtobuf, Accept: wire.ContentTypeProtobuf}
}

// errLost is figway's own link failing under a call: it does not count for
// the breaker. errReturned is the broker returning the route's message as
// unroutable: it does. errNacked is the broker refusing the message: it
// counts only once the refusals have lasted (TestNacksCountOnlyWhenTheyLast).
var (
	errLost     = fmt.Errorf("%w: %w: connection reset", gateway.ErrUnavailable, gateway.ErrChannelLost)
	errReturned = fmt.Errorf("%w: %w", gateway.ErrUnavailable, gateway.ErrUnroutable)
	errNacked   = fmt.Errorf("%w: %w", gateway.ErrUnavailable, gateway.ErrNacked)
)

func TestBreakerOpensOnExactlyFailures(t *testing.T) {
	for _, failures := range []int{1, 3, 5, 6} {
		t.Run(fmt.Sprint(failures), func(t *testing.T) {
			p := &publisher{fn: failWith(errReturned)}
			g := newGateway(p, table(t, fmt.Sprintf("  - {method: %s, routing_key: k, breaker: {failures: %d, open_for: 1h}}\n", getOrder, failures), nil))
			route := g.Table().Lookup(getOrder)
			for i := 1; i <= failures; i++ {
				if st := route.BreakerState(); st != resilience.BreakerClosed {
					t.Fatalf("after %d failures: BreakerState() = %v; want closed", i-1, st)
				}
				if _, err := g.Invoke(context.Background(), call(getOrder)); errors.Is(err, gateway.ErrBreakerOpen) {
					t.Fatalf("call %d refused by the breaker; want it published", i)
				}
			}
			if st := route.BreakerState(); st != resilience.BreakerOpen {
				t.Fatalf("after %d failures: BreakerState() = %v; want open", failures, st)
			}
			published := p.calls.Load()
			start := time.Now()
			_, err := g.Invoke(context.Background(), call(getOrder))
			took := time.Since(start)
			if !errors.Is(err, gateway.ErrBreakerOpen) || !errors.Is(err, gateway.ErrUnavailable) || gateway.Code(err) != codes.Unavailable {
				t.Errorf("Invoke on open breaker = %v (%v); want ErrBreakerOpen, UNAVAILABLE", err, gateway.Code(err))
			}
			if p.calls.Load() != published {
				t.Errorf("open breaker published: %d publishes; want %d", p.calls.Load(), published)
			}
			t.Logf("failures=%d: open after exactly %d publishes; refused in %v", failures, published, took)
		})
	}
}

// TestBreakerClassification: which outcomes count as breaker failures
// (docs/errors.md#circuit-breaker): those that say something about the
// route's destination, not figway's own link to the broker failing. Each
// route trips on its first failure.
func TestBreakerClassification(t *testing.T) {
	reply := func(c codes.Code) func(context.Context, int64, *wire.Request) (*gateway.Reply, error) {
		return func(context.Context, int64, *wire.Request) (*gateway.Reply, error) {
			return &gateway.Reply{Status: status.New(c, "service says")}, nil
		}
	}
	tests := []struct {
		name    string
		fn      func(context.Context, int64, *wire.Request) (*gateway.Reply, error)
		cancel  bool // the caller cancels while waiting
		failure bool
	}{
		{"ok", replyOK, false, false},
		{"service NOT_FOUND", reply(codes.NotFound), false, false},
		{"service INVALID_ARGUMENT", reply(codes.InvalidArgument), false, false},
		{"service FAILED_PRECONDITION", reply(codes.FailedPrecondition), false, false},
		{"service PERMISSION_DENIED", reply(codes.PermissionDenied), false, false},
		{"service RESOURCE_EXHAUSTED", reply(codes.ResourceExhausted), false, false},
		{"service ABORTED", reply(codes.Aborted), false, false},
		{"service UNKNOWN", reply(codes.Unknown), false, false},
		{"service UNAVAILABLE", reply(codes.Unavailable), false, true},
		{"service INTERNAL", reply(codes.Internal), false, true},
		{"a worker refusing a poison request", func(context.Context, int64, *wire.Request) (*gateway.Reply, error) {
			return &gateway.Reply{Status: status.New(codes.Internal, wire.PoisonRefusal+": delivered 3 times before")}, nil
		}, false, false},
		{"service DEADLINE_EXCEEDED", reply(codes.DeadlineExceeded), false, true},
		{"not connected", failWith(fmt.Errorf("%w: %w: not connected", gateway.ErrUnavailable, gateway.ErrNotPublished)), false, false},
		{"blocked", failWith(fmt.Errorf("%w: %w: connection blocked by the broker: low on memory", gateway.ErrUnavailable, gateway.ErrNotPublished)), false, false},
		{"channel lost", failWith(errLost), false, false},
		{"shutting down", failWith(fmt.Errorf("%w: %w: shutting down", gateway.ErrUnavailable, gateway.ErrChannelLost)), false, false},
		{"nacked (once: a leader election)", failWith(errNacked), false, false},
		{"returned", failWith(fmt.Errorf("%w: %w", gateway.ErrUnavailable, gateway.ErrUnroutable)), false, true},
		{"headers over frame_max", failWith(fmt.Errorf("%w: %w", gateway.ErrHeadersTooLarge, amqpwire.ErrHeaderTooLarge)), false, false},
		{"bad reply", func(context.Context, int64, *wire.Request) (*gateway.Reply, error) {
			return nil, fmt.Errorf("%w: bad figway-status", gateway.ErrBadReply)
		}, false, true},
		{"reply body does not decode", func(context.Context, int64, *wire.Request) (*gateway.Reply, error) {
			return &gateway.Reply{Body: []byte("\xff\xff\xff"), ContentType: wire.ContentTypeProtobuf}, nil
		}, false, true},
		{"deadline exceeded", func(ctx context.Context, _ int64, _ *wire.Request) (*gateway.Reply, error) {
			<-ctx.Done()
			return nil, fmt.Errorf("no reply before the deadline: %w", ctx.Err())
		}, false, true},
		{"caller cancelled", func(ctx context.Context, _ int64, _ *wire.Request) (*gateway.Reply, error) {
			<-ctx.Done()
			return nil, fmt.Errorf("waiting for reply: %w", ctx.Err())
		}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &publisher{fn: tt.fn}
				g := newGateway(p, table(t, "  - {method: "+getOrder+", routing_key: k, timeout: 1s, breaker: {failures: 1, open_for: 1h}}\n", nil))
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if tt.cancel {
					go func() { time.Sleep(100 * time.Millisecond); cancel() }()
				}
				c := call(getOrder)
				c.Accept = wire.ContentTypeJSON // the reply body is decoded
				_, err := g.Invoke(ctx, c)
				got := g.Table().Lookup(getOrder).BreakerState() == resilience.BreakerOpen
				if got != tt.failure {
					t.Errorf("Invoke = %v (%v): breaker open = %v; want %v", err, gateway.Code(err), got, tt.failure)
				}
			})
		})
	}
}

// blocking publishes wait until released or the caller gives up.
type blocking struct {
	release chan struct{}
}

func (b *blocking) fn(ctx context.Context, _ int64, _ *wire.Request) (*gateway.Reply, error) {
	select {
	case <-b.release:
		return &gateway.Reply{}, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for reply: %w", ctx.Err())
	}
}

func TestBreakerHalfOpenProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const probes = 2
		fail := true
		b := &blocking{release: make(chan struct{})}
		p := &publisher{}
		p.fn = func(ctx context.Context, n int64, req *wire.Request) (*gateway.Reply, error) {
			if fail {
				return nil, errReturned
			}
			return b.fn(ctx, n, req)
		}
		g := newGateway(p, table(t, fmt.Sprintf("  - {method: %s, routing_key: k, timeout: 1m, breaker: {failures: 2, open_for: 10s, half_open_requests: %d}}\n", getOrder, probes), nil))
		route := g.Table().Lookup(getOrder)
		g.Invoke(context.Background(), call(getOrder))
		g.Invoke(context.Background(), call(getOrder))
		opened := time.Now()
		if route.BreakerState() != resilience.BreakerOpen {
			t.Fatal("breaker not open after 2 failures")
		}
		fail = false

		time.Sleep(10 * time.Second)
		if _, err := g.Invoke(context.Background(), call(getOrder)); !errors.Is(err, gateway.ErrBreakerOpen) {
			t.Fatalf("at open_for: Invoke = %v; want ErrBreakerOpen", err)
		}
		time.Sleep(time.Nanosecond)
		if st := route.BreakerState(); st != resilience.BreakerHalfOpen {
			t.Fatalf("%v after opening: BreakerState() = %v; want half-open", time.Since(opened), st)
		}

		// The first probe's caller will cancel; then 9 concurrent callers:
		// exactly one more publishes, the rest are refused at once, without
		// waiting for the probes.
		published := p.calls.Load()
		errs := make(chan error, 20)
		invoke := func(ctx context.Context) {
			go func() {
				_, err := g.Invoke(ctx, call(getOrder))
				errs <- err
			}()
		}
		cancelled, cancel := context.WithCancel(context.Background())
		invoke(cancelled)
		synctest.Wait()
		for range 9 {
			invoke(context.Background())
		}
		synctest.Wait()
		if got := p.calls.Load() - published; got != probes {
			t.Fatalf("half-open breaker let %d calls publish; want exactly %d", got, probes)
		}
		refused := 0
		for len(errs) > 0 {
			if err := <-errs; errors.Is(err, gateway.ErrBreakerOpen) && gateway.Code(err) == codes.Unavailable {
				refused++
			}
		}
		if refused != 9-(probes-1) {
			t.Fatalf("%d calls refused at once; want %d", refused, 9-(probes-1))
		}

		// The cancelled probe reports once, as ignored: its slot is free
		// for exactly one more probe.
		cancel()
		if err := <-errs; gateway.Code(err) != codes.Canceled {
			t.Fatalf("cancelled probe: %v; want CANCELED", err)
		}
		invoke(context.Background())
		invoke(context.Background())
		synctest.Wait()
		if got := p.calls.Load() - published; got != probes+1 {
			t.Fatalf("after a cancelled probe, %d calls published; want %d", got, probes+1)
		}
		if err := <-errs; !errors.Is(err, gateway.ErrBreakerOpen) {
			t.Fatalf("third concurrent probe: %v; want ErrBreakerOpen", err)
		}
		close(b.release)
		for range probes {
			if err := <-errs; err != nil {
				t.Errorf("probe: %v", err)
			}
		}
		if st := route.BreakerState(); st != resilience.BreakerClosed {
			t.Errorf("after %d successful probes: BreakerState() = %v; want closed", probes, st)
		}
	})
}

func TestBulkheadExactUnderConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit, callers = 10, 200
		b := &blocking{release: make(chan struct{})}
		p := &publisher{fn: b.fn}
		g := newGateway(p, table(t, fmt.Sprintf("  - {method: %s, routing_key: k, max_in_flight: %d}\n", getOrder, limit), nil))
		errs := make(chan error, callers)
		for range callers {
			go func() {
				_, err := g.Invoke(context.Background(), call(getOrder))
				errs <- err
			}()
		}
		synctest.Wait() // every caller has been admitted and blocks, or was refused
		if got := p.calls.Load(); got != limit {
			t.Fatalf("%d calls published; want exactly max_in_flight %d", got, limit)
		}
		if got := g.Table().Lookup(getOrder).InFlight(); got != limit {
			t.Errorf("InFlight() = %d; want %d", got, limit)
		}
		if len(errs) != callers-limit {
			t.Fatalf("%d calls answered while %d wait; want %d refused at once", len(errs), limit, callers-limit)
		}
		for range callers - limit {
			if err := <-errs; !errors.Is(err, gateway.ErrOverloaded) || gateway.Code(err) != codes.ResourceExhausted {
				t.Fatalf("refused call: %v (%v); want ErrOverloaded, RESOURCE_EXHAUSTED", err, gateway.Code(err))
			}
		}
		close(b.release)
		for range limit {
			if err := <-errs; err != nil {
				t.Errorf("admitted call: %v", err)
			}
		}
		if got := g.Table().Lookup(getOrder).InFlight(); got != 0 {
			t.Errorf("InFlight() after = %d; want 0", got)
		}
		// The refused calls did not count against the breaker.
		if st := g.Table().Lookup(getOrder).BreakerState(); st != resilience.BreakerClosed {
			t.Errorf("BreakerState() = %v; want closed", st)
		}
	})
}

func TestDeadlineArithmetic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &publisher{fn: replyOK}
		g := newGateway(p, table(t, "  - {method: "+getOrder+", routing_key: k, timeout: 2s, breaker: {failures: 1}}\n", nil))
		start := time.Now()

		// The route's timeout is shorter.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		g.Invoke(ctx, call(getOrder))
		cancel()
		// The caller's deadline is shorter.
		ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
		g.Invoke(ctx, call(getOrder))
		cancel()
		// No caller deadline.
		g.Invoke(context.Background(), call(getOrder))
		want := []time.Duration{2 * time.Second, 300 * time.Millisecond, 2 * time.Second}
		for i, w := range want {
			if got := p.reqs[i].Deadline.Sub(start); got != w {
				t.Errorf("call %d: request deadline = start+%v; want start+%v", i, got, w)
			}
		}

		// An expired deadline is refused without publishing, and the
		// breaker is not asked (its one failure would open it).
		ctx, cancel = context.WithDeadline(context.Background(), time.Now())
		defer cancel()
		_, err := g.Invoke(ctx, call(getOrder))
		if !errors.Is(err, context.DeadlineExceeded) || gateway.Code(err) != codes.DeadlineExceeded {
			t.Errorf("Invoke with expired deadline = %v; want DEADLINE_EXCEEDED", err)
		}
		if got := p.calls.Load(); got != 3 {
			t.Errorf("expired call published: %d publishes; want 3", got)
		}
		if st := g.Table().Lookup(getOrder).BreakerState(); st != resilience.BreakerClosed {
			t.Errorf("BreakerState() = %v; want closed", st)
		}
	})
}

// TestRetry: which failed rpc calls are published again, and how often.
// A call whose channel was lost or abandoned as stuck (ErrNotConfirmed) is
// published again on a retry: idempotent route up to three times: after a
// partition, the calls on the cut-off node's connection were published
// again on a channel of the majority that stuck in turn; after a node
// stopped, on a connection that the broker closed at once (541).
func TestRetry(t *testing.T) {
	notPublished := fmt.Errorf("%w: %w: no open channel", gateway.ErrUnavailable, gateway.ErrNotPublished)
	returned := fmt.Errorf("%w: %w", gateway.ErrUnavailable, gateway.ErrUnroutable)
	stuck := fmt.Errorf("%w: %w: %w: channel stuck", gateway.ErrUnavailable, gateway.ErrChannelLost, gateway.ErrNotConfirmed)
	tests := []struct {
		name      string
		retry     string
		fails     []error // the errors of the first attempts; the next one succeeds
		publishes int64
		ok        bool
		open      bool // the breaker counted the call's failure (failures: 1)
	}{
		{"channel lost, not idempotent", "", []error{errLost}, 1, false, false},
		{"channel lost, idempotent", "retry: idempotent, ", []error{errLost}, 2, true, false},
		{"not published, not idempotent", "", []error{notPublished}, 2, true, false},
		{"not published, idempotent", "retry: idempotent, ", []error{notPublished}, 2, true, false},
		{"nacked, not idempotent", "", []error{errNacked}, 1, false, false},
		{"nacked, idempotent", "retry: idempotent, ", []error{errNacked}, 2, true, false},
		{"returned, idempotent", "retry: idempotent, ", []error{returned}, 1, false, true},
		{"lost twice, idempotent", "retry: idempotent, ", []error{errLost, errLost}, 3, true, false},
		{"lost three times, idempotent", "retry: idempotent, ", []error{errLost, errLost, errLost}, 4, true, false},
		{"lost four times, idempotent", "retry: idempotent, ", []error{errLost, errLost, errLost, errLost}, 4, false, false},
		{"stuck, not idempotent", "", []error{stuck}, 1, false, false},
		{"stuck, idempotent", "retry: idempotent, ", []error{stuck}, 2, true, false},
		{"lost, then stuck, idempotent", "retry: idempotent, ", []error{errLost, stuck}, 3, true, false},
		{"stuck three times, idempotent", "retry: idempotent, ", []error{stuck, stuck, stuck}, 4, true, false},
		{"stuck four times, idempotent", "retry: idempotent, ", []error{stuck, stuck, stuck, stuck}, 4, false, false},
		{"stuck, then lost, idempotent", "retry: idempotent, ", []error{stuck, errLost}, 3, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &publisher{fn: func(_ context.Context, n int64, _ *wire.Request) (*gateway.Reply, error) {
				if int(n) <= len(tt.fails) {
					return nil, tt.fails[n-1]
				}
				return &gateway.Reply{}, nil
			}}
			g := newGateway(p, table(t, "  - {method: "+getOrder+", routing_key: k, "+tt.retry+"breaker: {failures: 1, open_for: 1h}}\n", nil))
			_, err := g.Invoke(context.Background(), call(getOrder))
			if (err == nil) != tt.ok {
				t.Errorf("Invoke = %v; want ok=%v", err, tt.ok)
			}
			if got := p.calls.Load(); got != tt.publishes {
				t.Fatalf("%d publishes; want %d", got, tt.publishes)
			}
			for i := 1; i < len(p.reqs); i++ {
				if p.reqs[i].MessageID != p.reqs[0].MessageID {
					t.Errorf("retry %d message id %q; want the first one's, %q", i, p.reqs[i].MessageID, p.reqs[0].MessageID)
				}
			}
			// One call, one breaker report, that of its last attempt: a
			// final return opens (failures: 1); a lost or stuck channel
			// does not, nor does a first nack.
			if open := g.Table().Lookup(getOrder).BreakerState() == resilience.BreakerOpen; open != tt.open {
				t.Errorf("breaker open = %v after %v; want %v", open, err, tt.open)
			}
		})
	}
}

// An rpc call is never published again after its deadline.
func TestRetryNotAfterDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &publisher{fn: func(ctx context.Context, _ int64, _ *wire.Request) (*gateway.Reply, error) {
			<-ctx.Done()
			return nil, errLost
		}}
		g := newGateway(p, table(t, "  - {method: "+getOrder+", routing_key: k, timeout: 1s, retry: idempotent}\n", nil))
		g.Invoke(context.Background(), call(getOrder))
		if got := p.calls.Load(); got != 1 {
			t.Errorf("%d publishes; want 1 (no retry past the deadline)", got)
		}
	})
}

func TestReloadKeepsBreaker(t *testing.T) {
	p := &publisher{fn: failWith(errReturned)}
	routes := "  - {method: " + getOrder + ", routing_key: k, breaker: {failures: 1, open_for: 1h}}\n" +
		"  - {method: " + placeOrder + ", routing_key: p, pattern: event, breaker: {failures: 1, open_for: 1h}}\n"
	g := newGateway(p, table(t, routes, nil))
	g.Invoke(context.Background(), call(getOrder))
	g.Invoke(context.Background(), call(placeOrder))

	g.SetTable(table(t, routes, g.Table()))
	if st := g.Table().Lookup(getOrder).BreakerState(); st != resilience.BreakerOpen {
		t.Errorf("unchanged route after reload: BreakerState() = %v; want open (kept)", st)
	}
	changed := "  - {method: " + getOrder + ", routing_key: k, breaker: {failures: 2, open_for: 1h}}\n" +
		"  - {method: " + placeOrder + ", routing_key: p, pattern: event, breaker: {failures: 1, open_for: 1h}}\n"
	g.SetTable(table(t, changed, g.Table()))
	if st := g.Table().Lookup(getOrder).BreakerState(); st != resilience.BreakerClosed {
		t.Errorf("changed breaker after reload: BreakerState() = %v; want closed (new)", st)
	}
	if st := g.Table().Lookup(placeOrder).BreakerState(); st != resilience.BreakerOpen {
		t.Errorf("event route after reload: BreakerState() = %v; want open (kept)", st)
	}
}

// TestBreakerTransitionsLogged: a breaker's transitions are logged once
// each, not per refused call, through the gateway's logger — also after a
// reload that keeps the breaker.
func TestBreakerTransitionsLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		routes := "  - {method: " + getOrder + ", routing_key: k, breaker: {failures: 2, open_for: 1s}}\n"
		p := &publisher{fn: failWith(errReturned)}
		tb := table(t, routes, nil)
		g := gateway.New(gateway.Options{Publisher: p, Table: tb, Logger: log})
		for range 5 {
			g.Invoke(context.Background(), call(getOrder))
		}
		if n := strings.Count(buf.String(), "circuit breaker open"); n != 1 || !strings.Contains(buf.String(), "route="+getOrder) {
			t.Errorf("log has %d 'circuit breaker open' lines; want 1, naming the route:\n%s", n, buf.String())
		}

		g.SetTable(table(t, routes, tb)) // a reload that keeps the open breaker
		time.Sleep(time.Second + time.Millisecond)
		p.fn = replyOK
		if _, err := g.Invoke(context.Background(), call(getOrder)); err != nil {
			t.Fatalf("probe after open_for: %v", err)
		}
		for _, want := range []string{"circuit breaker half-open", "circuit breaker closed"} {
			if n := strings.Count(buf.String(), want); n != 1 {
				t.Errorf("after the reload, %d %q lines; want 1:\n%s", n, want, buf.String())
			}
		}
	})
}

// TestCallerDeadlineResetIsATimeout: a gRPC client resets its stream when
// its deadline passes, which cancels the call a moment before figway's copy
// of that deadline: such a call is a timeout, and counts.
func TestCallerDeadlineResetIsATimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &publisher{fn: func(ctx context.Context, _ int64, _ *wire.Request) (*gateway.Reply, error) {
			<-ctx.Done()
			return nil, fmt.Errorf("waiting for reply: %w", ctx.Err())
		}}
		g := newGateway(p, table(t, "  - {method: "+getOrder+", routing_key: k, timeout: 10s, breaker: {failures: 1, open_for: 1h}}\n", nil))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		time.AfterFunc(time.Second-5*time.Millisecond, cancel) // the reset
		_, err := g.Invoke(ctx, call(getOrder))
		if gateway.Code(err) != codes.DeadlineExceeded {
			t.Errorf("Invoke = %v (%v); want DEADLINE_EXCEEDED", err, gateway.Code(err))
		}
		if st := g.Table().Lookup(getOrder).BreakerState(); st != resilience.BreakerOpen {
			t.Errorf("breaker %v; want open: a timeout counts", st)
		}
	})
}

// TestNacksCountOnlyWhenTheyLast: a route whose publishes are nacked for
// less than the refusal grace (10 s) keeps its breaker closed however many
// calls fail, as through a quorum queue's leader election; refusals that
// go on past it open the breaker as any failure does, as from a queue
// that rejects publishes at its length limit (docs/errors.md).
func TestNacksCountOnlyWhenTheyLast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &publisher{fn: failWith(errNacked)}
		g := newGateway(p, table(t, "  - {method: "+getOrder+", routing_key: k, breaker: {failures: 5, open_for: 1h}}\n", nil))
		route := g.Table().Lookup(getOrder)
		for range 990 { // 9.9 s of nacked calls, 100 a second
			if _, err := g.Invoke(context.Background(), call(getOrder)); !errors.Is(err, gateway.ErrNacked) || gateway.Code(err) != codes.Unavailable {
				t.Fatalf("Invoke = %v; want UNAVAILABLE, nacked", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if st := route.BreakerState(); st != resilience.BreakerClosed {
			t.Fatalf("after 9.9 s of nacks: BreakerState() = %v; want closed", st)
		}
		time.Sleep(100 * time.Millisecond)
		for range 5 {
			g.Invoke(context.Background(), call(getOrder))
		}
		if st := route.BreakerState(); st != resilience.BreakerOpen {
			t.Errorf("after 10 s of nacks and 5 more: BreakerState() = %v; want open", st)
		}
	})
}

// TestRetryNackedUntilDeadline: on a retry: idempotent route, a call the
// broker keeps nacking is published again with backoff (at most 250 ms
// apart) until its deadline, and succeeds as soon as a publish is taken;
// the nacks it met open no breaker.
func TestRetryNackedUntilDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var times []time.Time
		p := &publisher{fn: func(_ context.Context, n int64, _ *wire.Request) (*gateway.Reply, error) {
			times = append(times, time.Now())
			if n <= 8 { // an election
				return nil, errNacked
			}
			return &gateway.Reply{}, nil
		}}
		g := newGateway(p, table(t, "  - {method: "+getOrder+", routing_key: k, timeout: 5s, retry: idempotent, breaker: {failures: 1, open_for: 1h}}\n", nil))
		start := time.Now()
		if _, err := g.Invoke(context.Background(), call(getOrder)); err != nil {
			t.Fatalf("Invoke = %v; want OK once the broker takes the publish", err)
		}
		if got := p.calls.Load(); got != 9 {
			t.Errorf("%d publishes; want 9", got)
		}
		for i := 1; i < len(times); i++ {
			if gap := times[i].Sub(times[i-1]); gap > 250*time.Millisecond {
				t.Errorf("publish %d came %v after the one before; want at most 250ms", i+1, gap)
			}
		}
		t.Logf("9 publishes over %v", time.Since(start))
		if st := g.Table().Lookup(getOrder).BreakerState(); st != resilience.BreakerClosed {
			t.Errorf("BreakerState() = %v; want closed", st)
		}

		// Nacked to the end: the call fails at its deadline, UNAVAILABLE,
		// and nothing is published after it.
		p.fn = func(_ context.Context, n int64, _ *wire.Request) (*gateway.Reply, error) {
			times = append(times, time.Now())
			return nil, errNacked
		}
		start = time.Now()
		_, err := g.Invoke(context.Background(), call(getOrder))
		if gateway.Code(err) != codes.Unavailable || !errors.Is(err, gateway.ErrNacked) {
			t.Errorf("Invoke = %v (%v); want UNAVAILABLE, nacked", err, gateway.Code(err))
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("call took %v; want at most its 5s deadline", took)
		}
		if last := times[len(times)-1]; last.Sub(start) > 5*time.Second {
			t.Errorf("published %v after the call began; want nothing past its deadline", last.Sub(start))
		}
	})
}

// redialer is a publisher that has lost its connection: its calls fail
// unpublished until reconnected; Redialing says whether it is dialing the
// next node at once, and AwaitConnected waits for the reconnect.
type redialer struct {
	*publisher
	redialing   bool
	reconnected chan struct{}
}

func (r *redialer) Redialing() bool { return r.redialing }

func (r *redialer) AwaitConnected(ctx context.Context) error {
	select {
	case <-r.reconnected:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestNotPublishedWaitsForRedial: a call that was never published because
// figway lost its connection waits, on a route without retry: idempotent,
// for the reconnect while figway is dialing the next node (a rolling
// restart), at most 1 s, and is published then; once every node has
// failed in turn (not redialing), it fails at once.
func TestNotPublishedWaitsForRedial(t *testing.T) {
	notConnected := fmt.Errorf("%w: %w: not connected to RabbitMQ", gateway.ErrUnavailable, gateway.ErrNotPublished)
	for _, tc := range []struct {
		name        string
		redialing   bool
		reconnectIn time.Duration
		ok          bool
		took        time.Duration
	}{
		{"redialing, back in 300ms", true, 300 * time.Millisecond, true, 300 * time.Millisecond},
		{"redialing, back in 3s", true, 3 * time.Second, false, time.Second},
		{"backing off", false, 300 * time.Millisecond, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := &redialer{redialing: tc.redialing, reconnected: make(chan struct{})}
				var connected atomic.Bool
				r.publisher = &publisher{fn: func(context.Context, int64, *wire.Request) (*gateway.Reply, error) {
					if !connected.Load() {
						return nil, notConnected
					}
					return &gateway.Reply{}, nil
				}}
				time.AfterFunc(tc.reconnectIn, func() { connected.Store(true); close(r.reconnected) })
				g := gateway.New(gateway.Options{Publisher: r, Table: table(t, "  - {method: "+getOrder+", routing_key: k, timeout: 5s}\n", nil)})
				start := time.Now()
				_, err := g.Invoke(context.Background(), call(getOrder))
				if took := time.Since(start); (err == nil) != tc.ok || took != tc.took {
					t.Errorf("Invoke = %v after %v; want ok=%v after %v", err, took, tc.ok, tc.took)
				}
			})
		})
	}
}
