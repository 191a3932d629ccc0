package hostile

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/prom"
)

// The tests of this file need no broker: figway serves its listeners
// whether RabbitMQ is up or not, and slow clients never get as far as it.

// serveWithoutBroker runs figway in-process on the ops routes with server
// keys extra, against a broker address nobody listens on.
func serveWithoutBroker(t *testing.T, extra string) figway.Addrs {
	t.Helper()
	a := figway.NewAddrs(t)
	path := figway.WriteRoutes(t, "", a, "amqp://guest:guest@"+proc.FreeAddr(t)+"/", map[string]string{"SERVER": extra})
	figway.Serve(t, path, a, false)
	return a
}

// closedWithin writes the first part of a request, then the others in
// turn, one every pause, until figway closes the connection, and returns
// how long that took.
func closedWithin(t *testing.T, addr string, parts []string, pause time.Duration) time.Duration {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c) // until figway closes (an answer may come first)
		close(closed)
	}()
	for i := 0; ; i++ {
		select {
		case <-closed:
			return time.Since(start)
		case <-time.After(pause):
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("connection still open after 30s")
		}
		if i == 0 {
			c.Write([]byte(parts[0]))
		} else if rest := parts[1:]; len(rest) > 0 {
			c.Write([]byte(rest[(i-1)%len(rest)]))
		}
	}
}

func TestSlowRESTClientsAreCut(t *testing.T) {
	a := serveWithoutBroker(t, ", read_header_timeout: 1s, read_timeout: 2s, idle_timeout: 1s")
	trickle := strings.Split("x-pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", "")
	// CancelOrder's route timeout is 300ms: its body must arrive by then.
	post := "POST /v1/orders/o-1:cancel HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	for _, tc := range []struct {
		name   string
		head   string
		parts  []string
		within time.Duration // the configured bound
	}{
		{"headers trickled", "GET /v1/orders/o-1 HTTP/1.1\r\nHost: x\r\n", trickle, time.Second},
		{"body trickled after complete headers (no route)", "POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", []string{"a"}, 2 * time.Second},
		{"body trickled to a route (its 300ms timeout)", post + "Content-Length: 100000\r\n\r\n{", []string{" "}, 300 * time.Millisecond},
		{"chunked body with no last chunk", post + "Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n", []string{"1\r\n \r\n"}, 300 * time.Millisecond},
		{"idle keep-alive after an answer", "GET /healthz-nowhere HTTP/1.1\r\nHost: x\r\n\r\n", nil, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parts := append([]string{tc.head}, tc.parts...)
			took := closedWithin(t, a.HTTP, parts, 100*time.Millisecond)
			// Margin for a loaded two-core machine; without the bound the
			// connection stays open (closedWithin gives up at 30s).
			if took > tc.within+5*time.Second {
				t.Errorf("connection closed after %v; want within %v (+ margin)", took, tc.within)
			}
			t.Logf("closed after %v (bound %v)", took.Round(time.Millisecond), tc.within)
		})
	}
}

func TestSlowGRPCClientsAreCut(t *testing.T) {
	a := serveWithoutBroker(t, ", idle_timeout: 1s")
	t.Run("idle connection after the handshake", func(t *testing.T) {
		c, err := net.Dial("tcp", a.GRPC)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")) // preface, empty SETTINGS
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		io.Copy(io.Discard, bufio.NewReader(c))
		if took := time.Since(start); took > 15*time.Second {
			t.Errorf("idle connection closed after %v; want about idle_timeout 1s (grpc-go checks at half of it)", took)
		} else {
			t.Logf("idle connection closed after %v", took.Round(time.Millisecond))
		}
	})
	conn := figway.Dial(t, a.GRPC)
	t.Run("stream that never sends its message", func(t *testing.T) {
		// CancelOrder's route timeout is 300ms.
		start := time.Now()
		s, err := conn.NewStream(context.Background(), &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/orders.v1.OrderService/CancelOrder")
		if err != nil {
			t.Fatal(err)
		}
		err = s.RecvMsg(new(ordersv1.Order))
		if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 5*time.Second {
			t.Errorf("stream without a message ended with %v after %v; want DeadlineExceeded after the route's 300ms", err, time.Since(start))
		}
	})
	t.Run("unary method with 3 request messages", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/orders.v1.OrderService/GetOrder")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			s.SendMsg(&ordersv1.GetOrderRequest{OrderId: "o-" + string(rune('1'+i))})
		}
		s.CloseSend()
		if err := s.RecvMsg(new(ordersv1.Order)); status.Code(err) != codes.Internal {
			t.Errorf("3 request messages to a unary method = %v; want Internal, as grpc-go's generated servers answer", err)
		}
	})
	t.Run("metadata over max_header_bytes", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := ordersv1.NewOrderServiceClient(conn).GetOrder(figway.WithMetadata(ctx, "x-big", strings.Repeat("m", 100<<10)), &ordersv1.GetOrderRequest{OrderId: "o-1"})
		if err == nil || status.Code(err) == codes.DeadlineExceeded {
			t.Errorf("GetOrder with 100 KB of metadata = %v; want refused at once", err)
		}
	})
}

// TestConnectionCap: with every REST connection figway allows held by slow
// clients, gRPC callers are still served at once, a fresh REST client is
// served as soon as a slow one is cut, and the metrics show the cap. (The
// mechanism, proved with a cap of 8 rather than 20,000 slow clients: the
// cap keeps each ingress below the descriptor limit whatever the number.)
func TestConnectionCap(t *testing.T) {
	a := serveWithoutBroker(t, ", max_connections: 8, read_header_timeout: 2s")
	var held []net.Conn
	for range 40 { // 8 held by figway, the rest waiting in the accept queue
		c, err := net.Dial("tcp", a.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET /v1/orders/o-1 HTTP/1.1\r\n"))
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	metrics := "http://" + a.Admin + "/metrics"
	poll.Until(t, 10*time.Second, "8 REST connections held", func() bool {
		return prom.Get(t, metrics).Value("figway_ingress_connections", "ingress", "http") == 8
	})
	if n := prom.Get(t, metrics).Value("figway_ingress_connections_max", "ingress", "http"); n != 8 {
		t.Errorf("figway_ingress_connections_max{ingress=http} = %v; want 8", n)
	}
	// gRPC: another listener, its own slots.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := ordersv1.NewOrderServiceClient(figway.Dial(t, a.GRPC)).GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC call while REST is full = %v; want answered at once (UNAVAILABLE: no broker)", err)
	}
	// REST: served once the slow clients ahead of it are cut (2s each
	// batch of 8; 40 ahead of it make 5 batches).
	start := time.Now()
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Get("http://" + a.HTTP + "/v1/orders/o-1")
	if err != nil {
		t.Fatalf("fresh REST client: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("fresh REST client = %d; want 503 (no broker)", resp.StatusCode)
	}
	t.Logf("fresh REST client served after %v behind 40 slow ones", time.Since(start).Round(time.Millisecond))
}
