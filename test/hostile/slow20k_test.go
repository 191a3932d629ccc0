package hostile

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/prom"
)

const (
	// twentyThousand is how many slow REST clients the test holds open.
	twentyThousand = 20000
	// slowDescriptors is figway's descriptor limit in the test: that of
	// the machine where 20,000 slow clients once took every descriptor
	// figway had, so that its default connection cap is the same
	// wherever the test runs ((20000-256)/2 = 9872 per ingress,
	// docs/operations.md "Limits and timeouts").
	slowDescriptors = 20000
	// slowPerChild is how many slow clients one child process holds,
	// well below any descriptor limit the test accepts.
	slowPerChild = 5000
	// slowRequestLine is all a slow client ever writes.
	slowRequestLine = "GET /v1/orders/o-1 HTTP/1.1\r\n"
)

// TestTwentyThousandSlowClients: 20,000 REST clients that send the first
// line of a request and never the rest, held by child processes, against
// `figway serve` with the default connection cap. While all 20,000 are
// held, figway keeps its descriptors (no accept error), holds exactly its
// cap of them (the rest wait in the kernel's accept queue or in SYN
// retries) and answers a fresh gRPC client at once (UNAVAILABLE: there is
// no broker). A fresh REST client is served once the slow ones ahead of it
// are cut by read_header_timeout. (Without the cap — max_connections set
// above the descriptor limit — figway reaches 20,000 descriptors, logs
// accept4: too many open files, and fresh gRPC, REST and /healthz clients
// all wait until slow ones are cut: docs/operations.md, "Limits and
// timeouts".)
func TestTwentyThousandSlowClients(t *testing.T) {
	needDescriptors(t, slowDescriptors)
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		ciFailOrSkip(t, "no prlimit on PATH (Debian's util-linux) to run figway with a descriptor limit of 20000")
	}
	// read_header_timeout: the slow clients are held long enough for the
	// gRPC call to be made while all of them are, and cut soon enough
	// for the fresh REST client to be served within the test.
	const cutAfter = 30 * time.Second
	a := figway.NewAddrs(t)
	path := figway.WriteRoutes(t, "", a, "amqp://guest:guest@"+proc.FreeAddr(t)+"/",
		map[string]string{"SERVER": fmt.Sprintf(", read_header_timeout: %v", cutAfter)})
	fig := proc.Start(t, "figway", prlimit, fmt.Sprintf("--nofile=%d:%d", slowDescriptors, slowDescriptors),
		proc.BuildFigway(t), "serve", "-config", path)
	figway.WaitHTTP(t, "http://"+a.Admin+"/healthz", http.StatusOK, 20*time.Second)
	pid := fig.Cmd.Process.Pid

	metrics := "http://" + a.Admin + "/metrics"
	capped := int(prom.Get(t, metrics).Value("figway_ingress_connections_max", "ingress", "http"))
	if want := (slowDescriptors - 256) / 2; capped != want {
		t.Fatalf("figway_ingress_connections_max{ingress=http} = %d; want %d (the descriptor limit less 256, halved)", capped, want)
	}
	var most int // the most REST connections figway was seen holding
	held := func() int {
		n := int(prom.Get(t, metrics).Value("figway_ingress_connections", "ingress", "http"))
		most = max(most, n)
		return n
	}

	begin := time.Now()
	clients := startSlowClients(t, a.HTTP, twentyThousand)
	for held() < capped {
		if time.Since(begin) > 60*time.Second {
			t.Fatalf("figway holds %d REST connections after 60s; want its cap %d (slow clients: %v)", held(), capped, clients.total())
		}
		time.Sleep(50 * time.Millisecond)
	}
	tookCap := time.Since(begin)
	polled := clients.waitOpen(t, twentyThousand, 30*time.Second)
	t.Logf("20,000 slow clients open (connected or connecting): %v; figway holds its cap of %d after %v",
		polled, capped, tookCap.Round(time.Millisecond))

	// gRPC: another listener with its own cap, and descriptors to spare.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = ordersv1.NewOrderServiceClient(figway.Dial(t, a.GRPC)).GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
	grpcTook := time.Since(start)
	if status.Code(err) != codes.Unavailable {
		t.Errorf("fresh gRPC client while 20,000 slow ones are held = %v after %v; want UNAVAILABLE (no broker) at once", err, grpcTook)
	}
	if c := clients.total(); c.open != twentyThousand || c.cut != 0 {
		t.Fatalf("slow clients when the gRPC client was answered: %v; want all 20,000 still held (is read_header_timeout %v too short for this machine?)", c, cutAfter)
	}
	if n := held(); n != capped {
		t.Errorf("figway holds %d REST connections after the gRPC call; want its cap %d", n, capped)
	}
	fds, kib := descriptors(t, pid), figway.RSS(t, pid)
	t.Logf("fresh gRPC client answered in %v while 20,000 slow ones are held; figway: %d descriptors, RSS %d MiB",
		grpcTook.Round(time.Millisecond), fds, kib>>10)

	// REST: a fresh client behind the slow ones, served once
	// read_header_timeout cuts those ahead of it.
	start = time.Now()
	type answer struct {
		code int
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		// While figway's accept queue is full its SYNs are dropped, and
		// the kernel retries them 1s, 3s, 7s, 15s and 31s after the first:
		// the client gives up each dial after 2s and dials again, as
		// clients with a connect timeout do, so that it is let in within
		// seconds of the queue having room rather than at the kernel's
		// next retry.
		tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			for {
				c, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
				if err == nil || ctx.Err() != nil {
					return c, err
				}
			}
		}}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr, Timeout: 90 * time.Second}
		resp, err := hc.Get("http://" + a.HTTP + "/v1/orders/o-1")
		if err != nil {
			answered <- answer{err: err}
			return
		}
		resp.Body.Close()
		answered <- answer{code: resp.StatusCode}
	}()
	var rest answer
	for waiting := true; waiting; {
		select {
		case rest = <-answered:
			waiting = false
		case <-time.After(200 * time.Millisecond):
			held()
			kib = max(kib, figway.RSS(t, pid))
			fds = max(fds, descriptors(t, pid))
		}
	}
	restTook := time.Since(start)
	if rest.err != nil || rest.code != http.StatusServiceUnavailable {
		t.Errorf("fresh REST client behind 20,000 slow ones = %d, %v after %v; want 503 (no broker)", rest.code, rest.err, restTook)
	}
	after := clients.total()
	t.Logf("fresh REST client served after %v (read_header_timeout %v); slow clients then: %v", restTook.Round(time.Millisecond), cutAfter, after)
	if after.cut == 0 {
		t.Errorf("fresh REST client served with no slow client cut (%v); want it served only as those ahead of it are cut", after)
	}

	if most > capped {
		t.Errorf("figway held %d REST connections at most; want no more than its cap %d", most, capped)
	}
	if fds > slowDescriptors-256 {
		t.Errorf("figway had %d descriptors open; want the reserve of 256 below its limit %d left free", fds, slowDescriptors)
	}
	if strings.Contains(fig.Log.String(), "too many open files") {
		t.Errorf("figway ran out of descriptors:\n%s", grepLines(fig.Log.String(), "too many open files", 5))
	}
	t.Logf("figway at most: %d REST connections (cap %d), %d descriptors (limit %d), RSS %d MiB", most, capped, fds, slowDescriptors, kib>>10)
	if kib > 1<<20 {
		t.Errorf("figway's RSS reached %d MiB; want it bounded (< 1 GiB)", kib>>10)
	}
}

// needDescriptors makes sure this process, and so the processes it starts,
// may open n descriptors: it raises the hard limit when it runs as root,
// and otherwise fails the test under CI=true and skips it elsewhere.
func needDescriptors(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max >= n {
		return
	}
	if os.Geteuid() == 0 {
		err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n})
		if err == nil {
			return
		}
		t.Logf("raising the descriptor limit to %d as root: %v", n, err)
	}
	ciFailOrSkip(t, fmt.Sprintf("the test needs a descriptor limit of %d; the hard limit is %d (run the test as root, or raise the hard limit)", n, lim.Max))
}

// ciFailOrSkip ends a test that cannot run on this machine: a failure when
// CI=true, else a skip.
func ciFailOrSkip(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: fails instead of skipping)", why)
	}
	t.Skipf("%s (the test is skipped; with CI=true it would fail)", why)
}

// descriptors is the number of descriptors process pid has open.
func descriptors(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// grepLines returns the first n lines of s that contain sub.
func grepLines(s, sub string, n int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && len(out) < n {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// clientCounts is what the slow clients of one child process, or of all,
// report: open are connected or still connecting; connected counts every
// connection made; cut were closed by figway; reset were reset (or their
// dial failed) and dialed again; failed could not be dialed again.
type clientCounts struct{ open, connected, cut, reset, failed int }

func (c clientCounts) String() string {
	return fmt.Sprintf("open %d (connections made %d), cut %d, reset and dialed again %d, failed %d", c.open, c.connected, c.cut, c.reset, c.failed)
}

// slowClients are REST clients held open by child processes of the test.
type slowClients struct {
	mu     sync.Mutex
	counts []clientCounts // the last report of each child
}

// startSlowClients starts n slow clients of addr in child processes, each
// running TestSlowClientsHelper for slowPerChild of them. The children are
// killed, with their process groups, when the test ends.
func startSlowClients(t *testing.T, addr string, n int) *slowClients {
	t.Helper()
	s := &slowClients{}
	for i := 0; i < n; i += slowPerChild {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSlowClientsHelper$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("FIGWAY_SLOW_CLIENTS=%s,%d", addr, min(slowPerChild, n-i)))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		log := &proc.SyncBuffer{}
		cmd.Stderr = log
		stdin, err := cmd.StdinPipe() // closed: the child exits
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		child := len(s.counts)
		s.counts = append(s.counts, clientCounts{})
		read := make(chan struct{})
		go func() {
			defer close(read)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var c clientCounts
				if _, err := fmt.Sscanf(sc.Text(), "slow clients: %d %d %d %d %d", &c.open, &c.connected, &c.cut, &c.reset, &c.failed); err == nil {
					s.mu.Lock()
					s.counts[child] = c
					s.mu.Unlock()
				}
			}
		}()
		t.Cleanup(func() {
			stdin.Close()
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-read
			cmd.Wait()
			if t.Failed() && log.String() != "" {
				t.Logf("slow clients' process %d:\n%s", child, log.String())
			}
		})
	}
	return s
}

// total adds up the children's last reports.
func (s *slowClients) total() clientCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum clientCounts
	for _, c := range s.counts {
		sum.open += c.open
		sum.connected += c.connected
		sum.cut += c.cut
		sum.reset += c.reset
		sum.failed += c.failed
	}
	return sum
}

// waitOpen waits until the children report n clients open, and returns
// the counts then.
func (s *slowClients) waitOpen(t *testing.T, n int, within time.Duration) clientCounts {
	t.Helper()
	begin := time.Now()
	for c := s.total(); ; c = s.total() {
		switch {
		case c.open == n:
			return c
		case c.cut > 0 || c.failed > 0 || time.Since(begin) > within:
			t.Fatalf("slow clients: %v; want %d open", c, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSlowClientsHelper is not a test: it is what startSlowClients's child
// processes run (this test binary again, with FIGWAY_SLOW_CLIENTS set to
// "addr,n"). It holds n slow clients of addr until its standard input
// closes, reporting their counts on standard output whenever they change.
func TestSlowClientsHelper(t *testing.T) {
	spec := os.Getenv("FIGWAY_SLOW_CLIENTS")
	if spec == "" {
		return
	}
	addr, count, _ := strings.Cut(spec, ",")
	n, err := strconv.Atoi(count)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	last := ""
	err = holdSlowClients(netip.MustParseAddrPort(addr), n, stop, func(c clientCounts) {
		if line := fmt.Sprintf("slow clients: %d %d %d %d %d\n", c.open, c.connected, c.cut, c.reset, c.failed); line != last {
			os.Stdout.WriteString(line)
			last = line
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	os.Exit(0)
}

// holdSlowClients dials n connections to addr at once, without waiting for
// any, writes slowRequestLine on each as it connects and nothing more, and
// holds them until stop is closed, calling report with the counts every
// 50ms. The connections are non-blocking sockets watched by one epoll set,
// so that starting thousands costs milliseconds, whatever the load and
// the race detector. A dial whose SYN the server dropped (its accept queue
// full) is retried by the kernel for about two minutes and is a held
// client all that time. A connection reset, or a dial that failed, is
// dialed again, as an attacker would (at most n times in all): the
// server's kernel resets the handshakes it completed but had no room to
// queue once it gives up on them; the server itself closes with a FIN.
func holdSlowClients(addr netip.AddrPort, n int, stop <-chan struct{}, report func(clientCounts)) error {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	defer syscall.Close(ep)
	to := &syscall.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	connecting := make(map[int32]bool, n) // by descriptor; false once connected
	dial := func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := syscall.Connect(fd, to); err != nil && err != syscall.EINPROGRESS {
			syscall.Close(fd)
			return err
		}
		ev := syscall.EpollEvent{Events: syscall.EPOLLOUT | syscall.EPOLLRDHUP, Fd: int32(fd)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			syscall.Close(fd)
			return err
		}
		connecting[int32(fd)] = true
		return nil
	}
	for range n {
		if err := dial(); err != nil {
			return err
		}
	}
	var c clientCounts
	drop := func(fd int32) {
		syscall.EpollCtl(ep, syscall.EPOLL_CTL_DEL, int(fd), nil)
		syscall.Close(int(fd))
		delete(connecting, fd)
	}
	again := func(fd int32) {
		drop(fd)
		c.reset++
		if c.reset > n || dial() != nil {
			c.failed++
		}
	}
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 4096)
	for {
		c.open = len(connecting)
		report(c)
		select {
		case <-stop:
			return nil
		default:
		}
		k, err := syscall.EpollWait(ep, events, 50)
		if err == syscall.EINTR {
			continue
		} else if err != nil {
			return err
		}
		for _, ev := range events[:k] {
			fd := ev.Fd
			if connecting[fd] {
				if soErr, _ := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR); soErr != 0 {
					again(fd)
					continue
				}
				connecting[fd] = false
				c.connected++
				syscall.Write(int(fd), []byte(slowRequestLine))
				in := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: fd}
				syscall.EpollCtl(ep, syscall.EPOLL_CTL_MOD, int(fd), &in)
				continue
			}
			// Readable once connected: the server answered, closed or reset it.
			switch m, err := syscall.Read(int(fd), buf); {
			case m == 0 && err == nil:
				drop(fd)
				c.cut++
			case m <= 0 && err != syscall.EAGAIN:
				again(fd)
			}
		}
	}
}
