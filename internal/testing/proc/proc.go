// Package proc runs a test's child processes — `figway serve` built once per
// test binary, the demo's services — on loopback ports no outgoing connection
// takes, and keeps their output for the test's log.
package proc

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/figway/figway/internal/testing/broker"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// SyncBuffer collects a child process's output while it runs; String may
// be called at any time.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreeAddr returns a loopback address with a port free at the time of the
// call, for a listener of a process the test starts. The port comes from
// [broker.FreePort]: outside the kernel's ephemeral range, so no
// outgoing connection takes it before the process binds it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := broker.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// A Process is a child process of the test, such as `figway serve`.
type Process struct {
	Cmd *exec.Cmd
	Log *SyncBuffer // its standard error
	// Exited is closed once the process has exited; Err is then the
	// result of Wait.
	Exited chan struct{}
	Err    error
}

// Start starts bin with args. If the process still runs when the
// test ends, it is killed; if the test failed, its standard error is logged
// under name.
func Start(t testing.TB, name, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(bin, args...), Log: &SyncBuffer{}, Exited: make(chan struct{})}
	p.Cmd.Stderr = p.Log
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.Err = p.Cmd.Wait(); close(p.Exited) }()
	t.Cleanup(func() {
		select {
		case <-p.Exited:
		default:
			p.Cmd.Process.Kill()
			<-p.Exited
		}
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, p.Log.String())
		}
	})
	return p
}

// built is the figway binary BuildFigway built for this test binary.
var built struct {
	sync.Mutex
	bin string
	err error
}

// BuildFigway builds cmd/figway, once per test binary, and returns the
// binary's path. The binary is removed when [rabbitmq.Main] ends.
func BuildFigway(t testing.TB) string {
	t.Helper()
	built.Lock()
	defer built.Unlock()
	if built.bin == "" && built.err == nil {
		begin := time.Now()
		dir, err := os.MkdirTemp("", "figway-bin-")
		if err != nil {
			t.Fatal(err)
		}
		rabbitmq.AfterTests(func() { os.RemoveAll(dir) })
		bin := filepath.Join(dir, "figway")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/figway/figway/cmd/figway").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build figway: %v\n%s", err, out)
		} else {
			built.bin = bin
			t.Logf("built figway in %v", time.Since(begin).Round(time.Millisecond))
		}
	}
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}
