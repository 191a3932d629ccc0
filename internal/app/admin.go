package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// adminWriteTimeout bounds an admin answer: longer than a default 30 s
// CPU profile.
const adminWriteTimeout = 60 * time.Second

// adminMux serves the admin listener: the status page, /metrics, /healthz,
// /readyz and, with profiles, the Go profiles.
func adminMux(ready func() bool, metrics, status http.Handler, profiles bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /", status) // the migration status page, and its assets
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready: broker not connected, blocked, or draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	// Profiles only when asked for (-pprof), on the admin listener only
	// (keep it on loopback or a private network: profiles show internals).
	if profiles {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// brokerNodes lists the hosts of the broker URLs, without their
// credentials.
func brokerNodes(urls []string) string {
	hosts := make([]string, 0, len(urls))
	for _, u := range urls {
		if p, err := url.Parse(u); err == nil {
			hosts = append(hosts, p.Host)
		}
	}
	return strings.Join(hosts, ", ")
}

// loopback reports whether a listener's address is a loopback one.
func loopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// watchReadiness keeps grpc.health.v1's overall status in step with ready,
// and logs each change.
func watchReadiness(ctx context.Context, ready func() bool, set func(string, healthpb.HealthCheckResponse_ServingStatus), log *slog.Logger) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last := healthpb.HealthCheckResponse_UNKNOWN
	for {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ready() {
			st = healthpb.HealthCheckResponse_SERVING
		}
		if st != last {
			set("", st)
			if last != healthpb.HealthCheckResponse_UNKNOWN || st != healthpb.HealthCheckResponse_NOT_SERVING {
				log.Info("readiness changed", "ready", st == healthpb.HealthCheckResponse_SERVING)
			}
			last = st
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
