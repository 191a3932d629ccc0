package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestValidate(t *testing.T) {
	code, out, errOut := runCLI("validate", "-config", "../../examples/orders/figway.yaml")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("validate example = %d, %q, %q; want 0 and ok", code, out, errOut)
	}

	desc, _ := filepath.Abs("../../examples/orders/orders.binpb")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(`descriptors: [`+desc+`]
broker: {url: "amqp://guest:secret@127.0.0.1:5672/"}
routes:
  - {method: orders.v1.OrderService/GetOrdr, routing_key: a}
  - {method: orders.v1.OrderService/WatchOrder, routing_key: b, pattern: event}
  - {method: orders.v1.OrderService/ListOrders, routing_key: c, timeout: 5x}
  - {method: orders.v1.OrderService/PlaceOrder, routing_key: d, patern: event}
`), 0o600)
	code, _, errOut = runCLI("validate", "-config", bad)
	if code != 1 {
		t.Errorf("validate bad file = %d; want 1", code)
	}
	for _, want := range []string{"4 problem(s)", "routes[0].method", "GetOrder?", "routes[1].pattern", "server-streaming",
		"routes[2].timeout", "routes[3].patern", `did you mean "pattern"`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("validate output lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "secret") {
		t.Errorf("validate output shows the broker password:\n%s", errOut)
	}
}

func TestRoutes(t *testing.T) {
	code, out, errOut := runCLI("routes", "-config", "../../examples/orders/figway.yaml")
	if code != 0 {
		t.Fatalf("routes = %d, %q", code, errOut)
	}
	for _, want := range []string{
		"orders.v1.OrderService/GetOrder", "orders.get", "2s",
		"orders.v1.OrderService/PlaceOrder", "orders.placed",
		"ramp [10 25 50 100]% by x-user", "legacy+shadow(compare)",
		"x-tenant-id",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("routes output lacks %q:\n%s", want, out)
		}
	}
	// A server-streaming route says so where the others name their
	// pattern (columns are two or more spaces apart).
	pattern := map[string]string{}
	for line := range strings.Lines(out) {
		if cols := regexp.MustCompile(`\s{2,}`).Split(line, -1); len(cols) > 2 {
			pattern[cols[0]] = cols[2]
		}
	}
	for method, want := range map[string]string{"orders.v1.OrderService/GetOrder": "rpc", "orders.v1.OrderService/WatchOrder": "stream"} {
		if pattern[method] != want {
			t.Errorf("routes output: %s's PATTERN = %q; want %q:\n%s", method, pattern[method], want, out)
		}
	}
}

func TestCommands(t *testing.T) {
	if code, out, _ := runCLI("version"); code != 0 || !strings.HasPrefix(out, "figway ") {
		t.Errorf("version = %d, %q", code, out)
	}
	if code, _, errOut := runCLI("frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command = %d, %q; want 2 and a usage", code, errOut)
	}
	if code, _, errOut := runCLI("validate", "-config", "/does/not/exist.yaml"); code != 1 || errOut == "" {
		t.Errorf("validate missing file = %d, %q; want 1 and the reason", code, errOut)
	}
}

func TestRampUsage(t *testing.T) {
	for _, args := range [][]string{{"ramp"}, {"ramp", "pause"}, {"ramp", "jump", "x.v1.S/M"}, {"ramp", "status", "-nope"}} {
		if code, _, errOut := runCLI(args...); code != 2 || errOut == "" {
			t.Errorf("figway %v = %d, %q; want 2 and why", args, code, errOut)
		}
	}
	// No admin listener there: the error says so, exit 1.
	code, _, errOut := runCLI("ramp", "status", "-admin", "127.0.0.1:1", "-token-file", "main_test.go")
	if code != 1 || !strings.Contains(errOut, "figway ramp:") {
		t.Errorf("figway ramp status on a closed port = %d, %q; want 1", code, errOut)
	}
}

// TestRampStatusRunning: the CALLS column shows the calls still running
// beside those that ended.
func TestRampStatusRunning(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/ramps" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"ramps":[{"method":"x.v1.S/M","steps":[5,50,100],"step":1,"weight":50,
			"gate":{"calls":16,"running":4,"min_calls":20}}]}`))
	}))
	defer srv.Close()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("ramp", "status", "-admin", strings.TrimPrefix(srv.URL, "http://"), "-token-file", token)
	if code != 0 || !regexp.MustCompile(`x\.v1\.S/M\s+50%\s+2/3\s+ramping\s+16\+4/20\s`).MatchString(out) {
		t.Errorf("figway ramp status = %d, %q, %q; want the CALLS column 16+4/20", code, out, errOut)
	}
}
