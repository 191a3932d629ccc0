package figway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/figway/figway/config"
	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/app"
	"github.com/figway/figway/internal/testing/proc"
	"google.golang.org/grpc"
)

// Addrs are the listen addresses of one figway.
type Addrs struct{ GRPC, HTTP, Admin string }

// NewAddrs returns three free loopback addresses ([proc.FreeAddr]).
func NewAddrs(t testing.TB) Addrs {
	return Addrs{GRPC: proc.FreeAddr(t), HTTP: proc.FreeAddr(t), Admin: proc.FreeAddr(t)}
}

// Serve runs figway in-process on the routes file at path until the test
// ends, and waits for /readyz to answer 200 (or, with wantReady false, for
// /healthz). Nothing is logged.
func Serve(t testing.TB, path string, a Addrs, wantReady bool) {
	t.Helper()
	ServeApp(t, path, a, wantReady, app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// ServeApp is Serve with the App's options given. It returns the App,
// for its Reload. The test fails if Run returns an error, or does not
// return within 30s of the test's end.
func ServeApp(t testing.TB, path string, a Addrs, wantReady bool, o app.Options) *app.App {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := app.New(path, cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- fw.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("figway's Run = %v; want nil once its context ended", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("figway's Run did not return within 30s of its context ending")
		}
	})
	probe := "/readyz"
	if !wantReady {
		probe = "/healthz"
	}
	WaitHTTP(t, "http://"+a.Admin+probe, http.StatusOK, 30*time.Second)
	return fw
}

// Proc is `figway serve` running as a child process.
type Proc struct{ *proc.Process }

// Start builds the binary (once per test binary) and runs `figway serve
// -config path` with flags, waiting for /readyz to answer 200. The
// process is killed at the end of the test if it is still running.
func Start(t testing.TB, path string, a Addrs, flags ...string) *Proc {
	t.Helper()
	return Run(t, proc.BuildFigway(t), path, a, flags...)
}

// Run is Start with a binary built already.
func Run(t testing.TB, bin, path string, a Addrs, flags ...string) *Proc {
	t.Helper()
	return RunAs(t, "figway", bin, path, a, flags...)
}

// RunAs is Run with the name the process's log goes under when the test
// fails, for a test that runs several.
func RunAs(t testing.TB, name, bin, path string, a Addrs, flags ...string) *Proc {
	t.Helper()
	p := &Proc{proc.Start(t, name, bin, append([]string{"serve", "-config", path}, flags...)...)}
	WaitHTTP(t, "http://"+a.Admin+"/readyz", http.StatusOK, time.Minute)
	return p
}

// LogLines returns the JSON log lines of p whose msg is msg.
func (p *Proc) LogLines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.Log.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// ServeLegacy serves l, a legacy orders service, over gRPC on a loopback
// port until the test ends, and returns its address.
func ServeLegacy(t testing.TB, l ordersv1.OrderServiceServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	ordersv1.RegisterOrderServiceServer(s, l)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}
