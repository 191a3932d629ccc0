package broker

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestPickRange(t *testing.T) {
	for _, tc := range []struct {
		ephLo, ephHi int
		lo, hi       int
		ok           bool
	}{
		{32768, 60999, 10000, 32767, true}, // Linux's default
		{49152, 65535, 10000, 49151, true}, // IANA's: BSD, macOS, Windows
		{10500, 60999, 61000, 65535, true}, // no room below: above
		{1024, 20000, 20001, 65535, true},
		{1024, 65000, 0, 0, false}, // no room on either side
		{10999, 65535, 0, 0, false},
		{11000, 65535, 10000, 10999, true},
	} {
		lo, hi, ok := pickRange(tc.ephLo, tc.ephHi)
		if lo != tc.lo || hi != tc.hi || ok != tc.ok {
			t.Errorf("pickRange(%d, %d) = %d, %d, %v; want %d, %d, %v", tc.ephLo, tc.ephHi, lo, hi, ok, tc.lo, tc.hi, tc.ok)
		}
	}
}

// TestFreePort checks that the ports FreePort hands out are outside the
// machine's ephemeral range, distinct, not RabbitMQ's defaults, and free.
func TestFreePort(t *testing.T) {
	ephLo, ephHi := ephemeralRange()
	if runtime.GOOS == "linux" {
		b, err := os.ReadFile(ephemeralRangeFile)
		if err != nil {
			t.Fatal(err)
		}
		if want := strconv.Itoa(ephLo) + " " + strconv.Itoa(ephHi); strings.Join(strings.Fields(string(b)), " ") != want {
			t.Fatalf("ephemeralRange() = %s; %s says %q", want, ephemeralRangeFile, b)
		}
	}
	t.Logf("ephemeral range %d–%d", ephLo, ephHi)
	lo, hi, ok := pickRange(ephLo, ephHi)
	if !ok {
		t.Skipf("no room outside the ephemeral range %d–%d: FreePort falls back to the kernel's choice", ephLo, ephHi)
	}
	seen := map[int]bool{}
	for range 100 {
		port, err := FreePort()
		if err != nil {
			t.Fatalf("FreePort: %v", err)
		}
		if port >= ephLo && port <= ephHi || port < lo || port > hi {
			t.Fatalf("FreePort() = %d; want a port in %d–%d, outside the ephemeral range %d–%d", port, lo, hi, ephLo, ephHi)
		}
		if seen[port] || rabbitPort(port) {
			t.Fatalf("FreePort() = %d: handed out before, or a RabbitMQ default", port)
		}
		seen[port] = true
		l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("FreePort() = %d, but it cannot be bound: %v", port, err)
		}
		l.Close()
	}
}

// TestPortFree checks that a port is seen taken while a listener has it,
// and while an outgoing connection uses it as its local port.
func TestPortFree(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for what, port := range map[string]int{
		"listening":       l.Addr().(*net.TCPAddr).Port,
		"connected local": c.LocalAddr().(*net.TCPAddr).Port,
	} {
		if portFree(port) {
			t.Errorf("portFree(%d) (%s port) = true; want false", port, what)
		}
	}
}

// heldPort returns a port that a listener of the test holds on 127.0.0.1
// until the test ends.
func heldPort(t *testing.T) int {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return port
}

// TestStartRetriesOnPortClash starts a node whose distribution port, then
// AMQP port, is taken before it binds it: the failure that port
// selection cannot rule out. The node must come up on the third ports.
func TestStartRetriesOnPortClash(t *testing.T) {
	if _, err := findInstallation(); err != nil {
		Unavailable(t, err)
	}
	t.Parallel()
	held := heldPort(t)
	attempt := 0
	ports := func() (int, int, error) {
		attempt++
		a, d, err := freePorts()
		switch attempt {
		case 1:
			d = held
		case 2:
			a = held
		}
		return a, d, err
	}
	n, err := startOn(context.Background(), "retrycookie", ports, 3)
	if err != nil {
		t.Fatalf("start with a taken port on the first two attempts: %v", err)
	}
	defer n.Close()
	if attempt != 3 || n.port == held || n.distPort == held {
		t.Errorf("node up after %d attempts on ports %d, %d; want 3 attempts, ports other than the taken %d", attempt, n.port, n.distPort, held)
	}
	if !n.AcceptsAMQP() {
		t.Errorf("node on port %d does not accept AMQP", n.port)
	}
	b, err := os.ReadFile(filepath.Join(n.dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, want := range []string{"dist_port_already_used", "eaddrinuse"} {
		if !strings.Contains(log, want) {
			t.Errorf("console.log does not contain %q:\n%s", want, log)
		}
	}
	if got := strings.Count(log, "==== rabbitmqtest: starting"); got != 3 {
		t.Errorf("console.log shows %d starts; want 3", got)
	}
}

// TestStartGivesUpOnPortClash checks that a node whose port is taken on
// every attempt fails with an error that says so.
func TestStartGivesUpOnPortClash(t *testing.T) {
	if _, err := findInstallation(); err != nil {
		Unavailable(t, err)
	}
	t.Parallel()
	held := heldPort(t)
	attempts := 0
	ports := func() (int, int, error) {
		attempts++
		a, _, err := freePorts()
		return a, held, err
	}
	n, err := startOn(context.Background(), "retrycookie", ports, 2)
	if err == nil {
		n.Close()
		t.Fatalf("start with distribution port %d taken = nil error", held)
	}
	if !errors.Is(err, errPortInUse) || attempts != 2 {
		t.Errorf("start after %d attempts: %v; want 2 attempts and errPortInUse", attempts, err)
	}
	for _, want := range []string{"on each of 2 attempts", "dist_port_already_used," + strconv.Itoa(held)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("start error does not contain %q: %v", want, err)
		}
	}
}
