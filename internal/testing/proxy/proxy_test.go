package proxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/figway/figway/internal/testing/proxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes every line back until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { io.Copy(c, c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func start(t *testing.T) (*proxy.Proxy, net.Conn, *bufio.Reader) {
	t.Helper()
	p, err := proxy.Start(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c, bufio.NewReader(c)
}

// roundTrip sends a line and reads it back, within timeout.
func roundTrip(c net.Conn, r *bufio.Reader, line string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	c.SetDeadline(start.Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return 0, err
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return time.Since(start), err
	}
	if got != line+"\n" {
		return 0, errors.New("echo mismatch: " + got)
	}
	return time.Since(start), nil
}

func TestPassAndLatency(t *testing.T) {
	p, c, r := start(t)
	if _, err := roundTrip(c, r, "hello", 2*time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}
	const d = 100 * time.Millisecond
	p.Latency(d)
	took, err := roundTrip(c, r, "slow", 5*time.Second)
	if err != nil {
		t.Fatalf("latency: %v", err)
	}
	t.Logf("round trip with %v latency each way: %v", d, took)
	if took < 2*d {
		t.Errorf("round trip with %v latency each way took %v; want ≥ %v", d, took, 2*d)
	}
	p.Pass()
	if took, err := roundTrip(c, r, "fast", 2*time.Second); err != nil || took > d {
		t.Errorf("back to pass: %v, %v; want < %v", took, err, d)
	}
}

func TestBlackholeHoldsThenReleases(t *testing.T) {
	p, c, r := start(t)
	p.Blackhole()
	_, err := roundTrip(c, r, "held", 300*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("black-holed round trip: %v; want a timeout (silence, not an error)", err)
	}
	// A new connection is accepted but hears nothing either.
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := roundTrip(c2, bufio.NewReader(c2), "new", 200*time.Millisecond); err == nil {
		t.Error("new connection through a black hole got an answer")
	}
	p.Pass()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	got, err := r.ReadString('\n')
	if err != nil || got != "held\n" {
		t.Fatalf("after the black hole: %q, %v; want the held bytes", got, err)
	}
}

// A server that closes its side during a black hole is not heard of by
// the client until the black hole ends.
func TestBlackholeHidesClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p, err := proxy.Start(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	p.Blackhole()
	srv.Close()
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read during the black hole after the server closed: %v; want a timeout (nothing heard)", err)
	}
	p.Pass()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after the black hole: %v; want the server's close", err)
	}
}

func TestResetResetsAndRefuses(t *testing.T) {
	p, c, r := start(t)
	if _, err := roundTrip(c, r, "hello", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	_, err := roundTrip(c, r, "gone", 2*time.Second)
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("after Reset: %v; want connection reset", err)
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err == nil {
		_, err = roundTrip(c2, bufio.NewReader(c2), "new", 2*time.Second)
		c2.Close()
	}
	if err == nil {
		t.Fatal("new connection while resetting got an answer")
	}
	p.Pass()
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if _, err := roundTrip(c3, bufio.NewReader(c3), "again", 2*time.Second); err != nil {
		t.Fatalf("after Pass: %v", err)
	}
}
