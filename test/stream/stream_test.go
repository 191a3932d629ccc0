package stream

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// line is one line of a REST stream: {"result": event} or {"error": status}.
type line struct {
	Result *struct {
		OrderID string `json:"orderId"`
	} `json:"result"`
	Error *struct {
		Code    codes.Code `json:"code"`
		Message string     `json:"message"`
	} `json:"error"`
}

// restStream is a REST caller's WatchOrder: the answer's body, read line
// by line.
type restStream struct {
	body io.Closer
	sc   *bufio.Scanner
}

func watchREST(ctx context.Context, base, id string) (*restStream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/orders/"+id+":watch", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("status %s: %s", resp.Status, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	return &restStream{body: resp.Body, sc: sc}, nil
}

// next returns the stream's next line, or io.EOF at the end of the body.
func (s *restStream) next() (line, error) {
	if !s.sc.Scan() {
		if err := s.sc.Err(); err != nil {
			return line{}, err
		}
		return line{}, io.EOF
	}
	var l line
	if err := json.Unmarshal(s.sc.Bytes(), &l); err != nil {
		return l, fmt.Errorf("line %q: %v", s.sc.Text(), err)
	}
	return l, nil
}

// TestManyStreamsOverREST runs 64 streams of 1,000 messages each at once
// through the REST ingress, as newline-delimited JSON: every one must
// arrive complete and in order, and end without an error line.
func TestManyStreamsOverREST(t *testing.T) {
	const streams, each = 64, 1000
	url := rabbitmq.ForTest(t).NewVHost(t)
	// The default idle bound: on a loaded two-core machine, with 64 of
	// the worker's handlers and 64 readers in this process under -race,
	// one handler was seen to wait over 2s for the CPU.
	a, _ := serveFigway(t, url, 30*time.Second)
	startWorker(t, url)
	warmUp(t, ordersv1.NewOrderServiceClient(figway.Dial(t, a.GRPC)))
	base := "http://" + a.HTTP

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for range streams {
		wg.Go(func() {
			s, err := watchREST(ctx, base, fmt.Sprint("n-", each))
			if err != nil {
				errs <- err
				return
			}
			defer s.body.Close()
			for i := 0; ; i++ {
				l, err := s.next()
				switch {
				case errors.Is(err, io.EOF) && i == each:
					return
				case err != nil:
					errs <- fmt.Errorf("line %d: %v", i, err)
					return
				case l.Error != nil:
					errs <- fmt.Errorf("line %d: error %v %q", i, l.Error.Code, l.Error.Message)
					return
				case l.Result == nil || l.Result.OrderID != fmt.Sprint(i):
					errs <- fmt.Errorf("line %d: %+v; want result %d", i, l.Result, i)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	took := time.Since(start)
	t.Logf("REST: %d streams × %d messages in %v: %.0f messages/s", streams, each, took.Round(time.Millisecond), float64(streams*each)/took.Seconds())
}

// TestWorkerKilledMidStream kills the worker with SIGKILL while it sends
// a stream to a gRPC caller and another to a REST caller: each caller must
// get UNAVAILABLE once the route's idle bound (2s) has passed — never an
// OK end with messages missing, never a hang — and figway must serve the
// next stream once a worker is back.
func TestWorkerKilledMidStream(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	a, _ := serveFigway(t, url, 2*time.Second)
	p := startWorkerProcess(t, url)
	orders := ordersv1.NewOrderServiceClient(figway.Dial(t, a.GRPC))
	warmUp(t, orders)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := orders.WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: "forever"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := watchREST(ctx, "http://"+a.HTTP, "forever")
	if err != nil {
		t.Fatal(err)
	}
	defer r.body.Close()
	for i := range 5 { // both streams are under way
		if _, err := g.Recv(); err != nil {
			t.Fatalf("gRPC message %d: %v", i, err)
		}
		if l, err := r.next(); err != nil || l.Result == nil {
			t.Fatalf("REST line %d: %+v, %v", i, l, err)
		}
	}

	killed := time.Now()
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	type end struct {
		who  string
		code codes.Code
		err  error
		n    int // messages after the kill
		took time.Duration
	}
	ends := make(chan end, 2)
	go func() {
		n := 0
		for {
			_, err := g.Recv()
			if err != nil {
				ends <- end{"gRPC", status.Code(err), err, n, time.Since(killed)}
				return
			}
			n++
		}
	}()
	go func() {
		n := 0
		for {
			l, err := r.next()
			switch {
			case err != nil: // the body ended without an error line
				ends <- end{"REST", codes.OK, err, n, time.Since(killed)}
				return
			case l.Error != nil:
				ends <- end{"REST", l.Error.Code, errors.New(l.Error.Message), n, time.Since(killed)}
				return
			}
			n++
		}
	}()
	for range 2 {
		select {
		case e := <-ends:
			t.Logf("%s caller: %v %d messages after the kill (in flight then), ended %v after it: %v", e.who, e.code, e.n, e.took.Round(time.Millisecond), e.err)
			if e.code != codes.Unavailable {
				t.Errorf("%s caller's stream ended with %v (%v); want UNAVAILABLE", e.who, e.code, e.err)
			}
			// The idle bound is 2s; the margin is for a loaded machine.
			if e.took > 15*time.Second {
				t.Errorf("%s caller's stream ended %v after the kill; want soon after the 2s idle bound", e.who, e.took)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a caller's stream had not ended 30s after the worker was killed")
		}
	}

	// A worker comes back: the next stream is served whole.
	startWorker(t, url)
	s, err := orders.WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: "n-3"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := figway.RecvIDs(s); fmt.Sprint(got) != "[0 1 2]" || err != nil {
		t.Errorf("WatchOrder(n-3) after the kill = %v, %v; want [0 1 2], nil", got, err)
	}
}

// warmUp waits for a first stream to be served whole, so that what a test
// measures starts with figway connected and the worker consuming.
func warmUp(t *testing.T, orders ordersv1.OrderServiceClient) {
	t.Helper()
	took := poll.Until(t, 30*time.Second, "a first stream served", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		s, err := orders.WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: "n-1"})
		if err != nil {
			return false
		}
		ids, err := figway.RecvIDs(s)
		return err == nil && len(ids) == 1
	})
	t.Logf("first stream served after %v", took.Round(time.Millisecond))
}

// TestDeadlinesKeepTheBreakerClosed has callers watch a stream for 1s
// each, with a deadline, as a caller does that watches for a while: each
// gets messages, then DEADLINE_EXCEEDED — over gRPC, and over REST
// (Grpc-Timeout: 1S) as the last line's error, not UNAVAILABLE. The
// worker answered all along, so their streams, cut short by the deadline,
// are no failures of the route: more of them than the breaker's failures
// (5) side by side must leave its breaker closed, and the next stream is
// served whole.
func TestDeadlinesKeepTheBreakerClosed(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	a, _ := serveFigway(t, url, 30*time.Second)
	startWorker(t, url)
	orders := ordersv1.NewOrderServiceClient(figway.Dial(t, a.GRPC))
	warmUp(t, orders)

	const callers = 8 // half over gRPC, half over REST
	type cut struct {
		who  string
		n    int
		code codes.Code
		err  error
	}
	cuts := make(chan cut, callers)
	for range callers / 2 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			s, err := orders.WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: "forever"})
			if err != nil {
				cuts <- cut{"gRPC", 0, status.Code(err), err}
				return
			}
			for n := 0; ; n++ {
				if _, err := s.Recv(); err != nil {
					cuts <- cut{"gRPC", n, status.Code(err), err}
					return
				}
			}
		}()
		go func() {
			// The client's own bound is far past the 1s deadline: figway
			// ends the stream.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.HTTP+"/v1/orders/forever:watch", nil)
			req.Header.Set("Grpc-Timeout", "1S")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				cuts <- cut{"REST", 0, codes.Unknown, err}
				return
			}
			defer resp.Body.Close()
			r := &restStream{body: resp.Body, sc: bufio.NewScanner(resp.Body)}
			for n := 0; ; n++ {
				l, err := r.next()
				switch {
				case err != nil: // the body ended without an error line
					cuts <- cut{"REST", n, codes.OK, err}
					return
				case l.Error != nil:
					cuts <- cut{"REST", n, l.Error.Code, errors.New(l.Error.Message)}
					return
				}
			}
		}()
	}
	withMessages := 0
	for range callers {
		c := <-cuts // each ends at its deadline: 1s
		t.Logf("a %s caller got %d messages, then %v: %v", c.who, c.n, c.code, c.err)
		if c.code != codes.DeadlineExceeded {
			t.Errorf("a 1s watch over %s ended with %v (%v); want DEADLINE_EXCEEDED", c.who, c.code, c.err)
		}
		if c.n > 0 {
			withMessages++
		}
	}
	// A caller that got no message counts as a timeout; on a machine
	// loaded enough for three of them this test proves nothing.
	if withMessages < 6 {
		t.Fatalf("%d of %d callers got messages before their deadline; want 6 at least", withMessages, callers)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := orders.WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: "n-3"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := figway.RecvIDs(s); fmt.Sprint(got) != "[0 1 2]" || err != nil {
		t.Errorf("WatchOrder(n-3) after the cut streams = %v, %v; want [0 1 2], nil (the breaker closed)", got, err)
	}
}
