package serve

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/certs"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// tlsBroker is a TLS front for a plaintext RabbitMQ, as a TLS listener of
// the broker (or a TLS-terminating load balancer before it) is: it
// requires a client certificate from the test CA and counts handshakes.
type tlsBroker struct {
	addr             string
	verified, failed atomic.Int32
}

func startTLSBroker(t *testing.T, tc *certs.Set, backend string) *tlsBroker {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(tc.ServerCert, tc.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: tc.Pool, ClientAuth: tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	b := &tlsBroker{addr: l.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			track(c)
			wg.Go(func() {
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					b.failed.Add(1)
					c.Close()
					return
				}
				b.verified.Add(1)
				up, err := net.Dial("tcp", backend)
				if err != nil {
					c.Close()
					return
				}
				track(up)
				go func() { io.Copy(up, c); up.Close() }()
				io.Copy(c, up)
				c.Close()
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return b
}

// TestTLS serves the ingress listeners with TLS and client-certificate
// verification, and reaches the broker over amqps:// with a CA and a
// client certificate: calls with a client certificate succeed on gRPC and
// REST; without one, or in plaintext, they are refused.
func TestTLS(t *testing.T) {
	node := rabbitmq.ForTest(t)
	plain := node.NewVHost(t)
	tc := certs.Make(t)
	tb := startTLSBroker(t, tc, net.JoinHostPort("127.0.0.1", strconv.Itoa(node.Port())))
	u, _ := url.Parse(plain)
	u.Scheme, u.Host = "amqps", tb.addr
	a := figway.NewAddrs(t)
	path := figway.WriteRoutes(t, "", a, u.String(), map[string]string{
		"SERVER":  ", tls: {cert: " + tc.ServerCert + ", key: " + tc.ServerKey + ", client_ca: " + tc.CA + "}",
		"BROKERX": ", tls: {ca: " + tc.CA + ", cert: " + tc.ClientCert + ", key: " + tc.ClientKey + ", server_name: localhost}",
	})
	w := figway.StartWorker(t, plain, nil)
	figway.Serve(t, path, a, true)
	fault.WaitConsuming(t, w)
	if tb.verified.Load() < 1 {
		t.Fatalf("figway is ready but the TLS broker verified %d client certificates", tb.verified.Load())
	}

	call := func(creds credentials.TransportCredentials) error {
		conn, err := grpc.NewClient(a.GRPC, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = ordersv1.NewOrderServiceClient(conn).GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
		return err
	}
	if err := call(credentials.NewTLS(tc.ClientConfig(t, true))); err != nil {
		t.Errorf("gRPC over TLS with a client certificate: %v", err)
	}
	if err := call(credentials.NewTLS(tc.ClientConfig(t, false))); err == nil {
		t.Error("gRPC over TLS without a client certificate succeeded; want it refused")
	}
	stranger := tc.ClientConfig(t, false)
	other, _ := tls.LoadX509KeyPair(tc.OtherClientCert, tc.OtherClientKey)
	stranger.Certificates = []tls.Certificate{other}
	if err := call(credentials.NewTLS(stranger)); err == nil {
		t.Error("gRPC with a client certificate of another CA succeeded; want it refused")
	}
	if err := call(insecure.NewCredentials()); err == nil {
		t.Error("plaintext gRPC succeeded; want it refused")
	}

	get := func(scheme string, tc *tls.Config) (int, error) {
		c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(scheme + "://" + a.HTTP + "/v1/orders/o-1")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get("https", tc.ClientConfig(t, true)); code != http.StatusOK {
		t.Errorf("REST over TLS with a client certificate = %d, %v; want 200", code, err)
	}
	if code, err := get("https", tc.ClientConfig(t, false)); err == nil {
		t.Errorf("REST over TLS without a client certificate = %d; want the handshake refused", code)
	}
	if code, err := get("http", nil); code != http.StatusBadRequest {
		t.Errorf("plaintext REST = %d, %v; want 400 from the TLS listener, never served", code, err)
	}

	// A figway whose broker.tls lacks the client certificate the broker
	// requires never connects, and never tries plaintext.
	verifiedBefore := tb.verified.Load()
	a2 := figway.NewAddrs(t)
	path2 := figway.WriteRoutes(t, "", a2, u.String(), map[string]string{"BROKERX": ", tls: {ca: " + tc.CA + "}"})
	figway.Serve(t, path2, a2, false)
	poll.Until(t, 5*time.Second, "the TLS broker refusing a handshake without a client certificate", func() bool { return tb.failed.Load() >= 1 })
	if code, _ := figway.HTTPGet("http://" + a2.Admin + "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz of a figway that cannot complete its broker handshake = %d; want 503", code)
	}
	if tb.verified.Load() != verifiedBefore {
		t.Errorf("the TLS broker verified a handshake from the figway without a client certificate")
	}
}
