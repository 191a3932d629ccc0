package figway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/figway/figway/config"
	"github.com/figway/figway/internal/app"
	"github.com/figway/figway/internal/testing/proc"
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

// ServeApp is Serve with the App's options given.
func ServeApp(t testing.TB, path string, a Addrs, wantReady bool, o app.Options) {
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
				t.Errorf("figway's Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("figway did not return within 10s of its cancellation")
		}
	})
	probe := "/readyz"
	if !wantReady {
		probe = "/healthz"
	}
	WaitHTTP(t, "http://"+a.Admin+probe, http.StatusOK, 30*time.Second)
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
	p := &Proc{proc.Start(t, "figway", bin, append([]string{"serve", "-config", path}, flags...)...)}
	WaitHTTP(t, "http://"+a.Admin+"/readyz", http.StatusOK, 20*time.Second)
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
