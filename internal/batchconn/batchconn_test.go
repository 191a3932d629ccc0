package batchconn

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// eventually fails t unless cond holds within 5 s. The batchconn module
// imports none of figway's test machinery (docs/development.md,
// "Modules"), poll included.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("%s: not within 5s", what)
		case <-time.After(time.Millisecond):
		}
	}
}

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// gate is a net.Conn whose writes wait while it is held, and which counts
// them and can fail them.
type gate struct {
	net.Conn
	mu     sync.Mutex
	open   *sync.Cond
	held   bool
	writes int
	fail   error
	closed bool
}

func newGate(c net.Conn) *gate {
	g := &gate{Conn: c}
	g.open = sync.NewCond(&g.mu)
	return g
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	g.writes++
	for g.held {
		g.open.Wait()
	}
	err := g.fail
	g.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return g.Conn.Write(p)
}

func (g *gate) Close() error {
	g.mu.Lock()
	g.closed = true
	g.held = false
	g.open.Broadcast()
	g.mu.Unlock()
	return g.Conn.Close()
}

func (g *gate) set(held bool) {
	g.mu.Lock()
	g.held = held
	g.open.Broadcast()
	g.mu.Unlock()
}

func (g *gate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.writes
}

// stuck returns a Conn whose writer is stuck in its first write, of first,
// until g.set(false); server is the peer.
func stuck(t *testing.T, limit int, first []byte) (b *Conn, g *gate, server net.Conn) {
	t.Helper()
	client, server := pair(t)
	g = newGate(client)
	b = New(g, limit)
	g.set(true)
	b.Write(first)
	eventually(t, "the writer to take the first write", func() bool { return g.count() == 1 })
	return b, g, server
}

func TestConcurrentWritersKeepTheirOrder(t *testing.T) {
	client, server := pair(t)
	b := New(client, 4096) // small, so writers also wait for room
	const writers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := fmt.Fprintf(b, "%d:%d\n", w, i); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		})
	}
	next := make([]int, writers)
	r := bufio.NewScanner(server)
	for n := 0; n < writers*each && r.Scan(); n++ {
		var w, i int
		if _, err := fmt.Sscanf(r.Text(), "%d:%d", &w, &i); err != nil {
			t.Fatalf("record %q: %v", r.Text(), err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: got record %d; want %d", w, i, next[w])
		}
		next[w]++
	}
	wg.Wait()
	for w, n := range next {
		if n != each {
			t.Errorf("writer %d: %d records arrived; want %d", w, n, each)
		}
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestWritesGatherWhileTheSocketIsBusy(t *testing.T) {
	b, g, server := stuck(t, 0, []byte("first;"))
	defer b.Close()
	var want strings.Builder
	want.WriteString("first;")
	for i := range 100 {
		s := fmt.Sprintf("w%d;", i)
		want.WriteString(s)
		if _, err := b.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	g.set(false)

	got := make([]byte, want.Len())
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Errorf("peer read %q; want %q", got, want.String())
	}
	if n := g.count(); n != 2 {
		t.Errorf("101 writes made %d system writes; want 2 (one, then the 100 gathered behind it)", n)
	}
}

func TestWriteErrorClosesTheConnectionAndSticks(t *testing.T) {
	client, server := pair(t)
	g := newGate(client)
	g.fail = errors.New("connection reset by peer")
	b := New(g, 0)
	defer b.Close()

	if _, err := b.Write([]byte("lost")); err != nil {
		t.Fatalf("first Write = %v; want nil (the write happens later)", err)
	}
	// The peer sees the connection end: that is how amqp091-go's reader
	// learns that writes failed.
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := server.Read(make([]byte, 16)); err != io.EOF {
		t.Fatalf("peer Read = %d, %v; want EOF", n, err)
	}
	eventually(t, "later writes to fail", func() bool {
		_, err := b.Write([]byte("x"))
		return err != nil
	})
	if _, err := b.Write([]byte("x")); err == nil || err.Error() != g.fail.Error() {
		t.Errorf("Write after the failure = %v; want %v", err, g.fail)
	}
}

func TestWriteWaitsForRoomBeyondTheLimit(t *testing.T) {
	b, g, server := stuck(t, 100, make([]byte, 10))
	defer b.Close()
	if _, err := b.Write(make([]byte, 100)); err != nil { // gathered: exactly the limit
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := b.Write(make([]byte, 1))
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("Write beyond the limit returned (%v) while the writer was stuck", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.set(false)
	if err := <-wrote; err != nil {
		t.Fatalf("Write after room was made = %v", err)
	}
	if _, err := io.ReadFull(server, make([]byte, 111)); err != nil {
		t.Fatal(err)
	}
}

func TestCloseReleasesWaitingWriters(t *testing.T) {
	b, _, _ := stuck(t, 10, make([]byte, 10))
	b.Write(make([]byte, 10))
	wrote := make(chan error, 1)
	go func() {
		_, err := b.Write(make([]byte, 1))
		wrote <- err
	}()
	eventually(t, "the Write to wait for room", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.waiting == 1
	})
	b.Close() // ends the waiting Write, and the write stuck in the gate
	if err := <-wrote; !errors.Is(err, net.ErrClosed) {
		t.Errorf("waiting Write after Close = %v; want net.ErrClosed", err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close = %v; want net.ErrClosed", err)
	}
}
