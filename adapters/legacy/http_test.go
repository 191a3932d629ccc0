package legacy_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/figway/figway/adapters/legacy"
)

func TestHTTPPassthrough(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/base/v1/orders/o-1":
			w.Header().Set("X-Seen-Forwarded-For", r.Header.Get("X-Forwarded-For"))
			w.Header().Set("X-Seen-Hop", r.Header.Get("X-Hop"))
			w.Header().Set("X-Seen-Tenant", r.Header.Get("X-Tenant-Id"))
			body, _ := io.ReadAll(r.Body)
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, r.Method+" "+r.URL.RawQuery+" "+string(body))
		case "/base/stream":
			f := w.(http.Flusher)
			for i := range 3 {
				io.WriteString(w, "chunk\n")
				f.Flush()
				if i == 0 {
					time.Sleep(300 * time.Millisecond) // the first chunk must arrive before this ends
				}
			}
		case "/base/slow":
			time.Sleep(2 * time.Second)
		}
	}))
	defer up.Close()
	h, err := legacy.NewHTTP(up.URL+"/base", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fr := httptest.NewServer(h)
	defer fr.Close()

	req, _ := http.NewRequest(http.MethodPost, fr.URL+"/v1/orders/o-1?x=1", strings.NewReader(`{"a":1}`))
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "must not cross")
	req.Header.Set("X-Tenant-Id", "acme")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || string(body) != `POST x=1 {"a":1}` {
		t.Errorf("proxied POST = %d %q; want 201 %q", resp.StatusCode, body, `POST x=1 {"a":1}`)
	}
	if resp.Header.Get("X-Seen-Forwarded-For") != "127.0.0.1" || resp.Header.Get("X-Seen-Hop") != "" || resp.Header.Get("X-Seen-Tenant") != "acme" {
		t.Errorf("upstream saw X-Forwarded-For=%q X-Hop=%q X-Tenant-Id=%q; want 127.0.0.1, nothing, acme",
			resp.Header.Get("X-Seen-Forwarded-For"), resp.Header.Get("X-Seen-Hop"), resp.Header.Get("X-Seen-Tenant"))
	}

	// Streaming: the first chunk arrives before the upstream has finished.
	start := time.Now()
	resp, err = http.Get(fr.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	first := time.Since(start)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if line != "chunk\n" || first > 250*time.Millisecond {
		t.Errorf("first chunk %q after %v; want it before the upstream's 300ms pause ends", line, first)
	}

	// An upstream slower than the request's deadline: 504.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/slow", nil).WithContext(ctx))
	if w.Code != http.StatusGatewayTimeout {
		t.Errorf("proxy to a slow upstream = %d; want 504", w.Code)
	}
}

func TestHTTPUpstreamDown(t *testing.T) {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := lis.Addr().String()
	lis.Close()
	h, err := legacy.NewHTTP("http://"+addr, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/orders", nil))
	if w.Code != http.StatusBadGateway {
		t.Errorf("proxy to a dead upstream = %d; want 502", w.Code)
	}
	if _, err := legacy.NewHTTP("ftp://x", nil); err == nil {
		t.Error("NewHTTP(ftp://x) = nil error; want a refusal")
	}
}
