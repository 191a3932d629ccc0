package main

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
	"github.com/figway/figway/internal/faulttest"
	"github.com/figway/figway/internal/polltest"
	"github.com/figway/figway/internal/rabbitmqtest"
	"github.com/figway/figway/internal/testcerts"
)

// tlsBroker is a TLS front for a plaintext RabbitMQ, as a TLS listener of
// the broker (or a TLS-terminating load balancer before it) is: it
// requires a client certificate from the test CA and counts handshakes.
type tlsBroker struct {
	addr             string
	verified, failed atomic.Int32
}

func startTLSBroker(t *testing.T, certs *testcerts.Set, backend string) *tlsBroker {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: certs.Pool, ClientAuth: tls.RequireAndVerifyClientCert,
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
	node := rabbitmqtest.ForTest(t)
	plain := node.NewVHost(t)
	certs := testcerts.Make(t)
	tb := startTLSBroker(t, certs, net.JoinHostPort("127.0.0.1", strconv.Itoa(node.Port())))
	u, _ := url.Parse(plain)
	u.Scheme, u.Host = "amqps", tb.addr
	a := newAddrs(t)
	path := writeOpsRoutes(t, "", a, u.String(), map[string]string{
		"SERVER":  ", tls: {cert: " + certs.ServerCert + ", key: " + certs.ServerKey + ", client_ca: " + certs.CA + "}",
		"BROKERX": ", tls: {ca: " + certs.CA + ", cert: " + certs.ClientCert + ", key: " + certs.ClientKey + ", server_name: localhost}",
	})
	w := runOpsWorker(t, plain, nil)
	serveInProcess(t, path, a, true)
	faulttest.WaitConsuming(t, w)
	if tb.verified.Load() < 1 {
		t.Fatalf("figway is ready but the TLS broker verified %d client certificates", tb.verified.Load())
	}

	call := func(creds credentials.TransportCredentials) error {
		conn, err := grpc.NewClient(a.grpc, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = ordersv1.NewOrderServiceClient(conn).GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
		return err
	}
	if err := call(credentials.NewTLS(certs.ClientConfig(t, true))); err != nil {
		t.Errorf("gRPC over TLS with a client certificate: %v", err)
	}
	if err := call(credentials.NewTLS(certs.ClientConfig(t, false))); err == nil {
		t.Error("gRPC over TLS without a client certificate succeeded; want it refused")
	}
	stranger := certs.ClientConfig(t, false)
	other, _ := tls.LoadX509KeyPair(certs.OtherClientCert, certs.OtherClientKey)
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
		resp, err := c.Get(scheme + "://" + a.http + "/v1/orders/o-1")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get("https", certs.ClientConfig(t, true)); code != http.StatusOK {
		t.Errorf("REST over TLS with a client certificate = %d, %v; want 200", code, err)
	}
	if code, err := get("https", certs.ClientConfig(t, false)); err == nil {
		t.Errorf("REST over TLS without a client certificate = %d; want the handshake refused", code)
	}
	if code, err := get("http", nil); code != http.StatusBadRequest {
		t.Errorf("plaintext REST = %d, %v; want 400 from the TLS listener, never served", code, err)
	}

	// A figway whose broker.tls lacks the client certificate the broker
	// requires never connects, and never tries plaintext.
	verifiedBefore := tb.verified.Load()
	a2 := newAddrs(t)
	path2 := writeOpsRoutes(t, "", a2, u.String(), map[string]string{"BROKERX": ", tls: {ca: " + certs.CA + "}"})
	serveInProcess(t, path2, a2, false)
	polltest.Until(t, 5*time.Second, "the TLS broker refusing a handshake without a client certificate", func() bool { return tb.failed.Load() >= 1 })
	if code, _ := httpGet("http://" + a2.admin + "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz of a figway that cannot complete its broker handshake = %d; want 503", code)
	}
	if tb.verified.Load() != verifiedBefore {
		t.Errorf("the TLS broker verified a handshake from the figway without a client certificate")
	}
}
