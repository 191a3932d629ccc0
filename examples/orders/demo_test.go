package orders_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	figwaytest "github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// TestDemoParity runs the demo as make demo does — the legacy service, the
// Go worker and figway serve with the demo's routes file, each its own
// process — and places the same order at the legacy service directly and
// through figway, where PlaceOrder is migrated to the worker: status,
// Location, Content-Type and body are the same bytes, apart from the
// order's id and dates.
func TestDemoParity(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	dir := t.TempDir()
	figway := proc.BuildFigway(t)
	if out, err := exec.Command("go", "build", "-o", dir, "./legacy", "./worker").CombinedOutput(); err != nil {
		t.Fatalf("go build legacy worker: %v\n%s", err, out)
	}
	a := addrs{proc.FreeAddr(t), proc.FreeAddr(t), proc.FreeAddr(t)}
	legacyGRPC, legacyHTTP := proc.FreeAddr(t), proc.FreeAddr(t)

	routes, err := os.ReadFile("figway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	desc, _ := filepath.Abs("orders.binpb")
	file := string(routes)
	for _, r := range [][2]string{
		{"127.0.0.1:8080", a.grpc}, {"127.0.0.1:8081", a.http}, {"127.0.0.1:9090", a.admin},
		{"127.0.0.1:50051", legacyGRPC}, {"http://127.0.0.1:8000", "http://" + legacyHTTP},
		{"amqp://guest:guest@127.0.0.1:5672/", url}, {"[orders.binpb]", `["` + desc + `"]`},
	} {
		if !strings.Contains(file, r[0]) {
			t.Fatalf("figway.yaml has no %s to replace", r[0])
		}
		file = strings.Replace(file, r[0], r[1], 1)
	}
	path := filepath.Join(dir, "figway.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}

	runProcess(t, exec.Command(filepath.Join(dir, "legacy"), "-grpc", legacyGRPC, "-http", legacyHTTP))
	runProcess(t, exec.Command(filepath.Join(dir, "worker"), "-amqp", url, "-watch-every", "50ms"))
	runProcess(t, exec.Command(figway, "serve", "-config", path))
	figwaytest.WaitHTTP(t, "http://"+a.admin+"/readyz", http.StatusOK, 30*time.Second)
	waitConsumers(t, a.admin)

	legacy := placeOrder(t, "http://"+legacyHTTP)
	migrated := placeOrder(t, "http://"+a.http)
	if legacy.status != http.StatusCreated || !strings.HasPrefix(legacy.location, "/v1/orders/") {
		t.Fatalf("legacy POST /v1/orders = %d, Location %q; want 201 and the order's Location", legacy.status, legacy.location)
	}
	t.Logf("legacy:   %d Location %s %s", legacy.status, legacy.location, legacy.body)
	t.Logf("migrated: %d Location %s %s", migrated.status, migrated.location, migrated.body)
	if migrated.headers.Get("X-Served-By") != "" {
		t.Fatalf("POST /v1/orders through figway was served by legacy; want the worker")
	}
	if m, l := migrated.masked(), legacy.masked(); m != l {
		t.Errorf("POST /v1/orders through figway differs from legacy's answer:\n migrated %s\n legacy   %s", m, l)
	}
	// The Location of the migrated path leads to the order, through figway.
	if code, body := rest(t, "GET", "http://"+a.http+migrated.location, ""); code != http.StatusOK || !strings.Contains(body, `"note":"parity"`) {
		t.Errorf("GET %s = %d %s; want the placed order", migrated.location, code, body)
	}
	t.Run("WatchOrder", func(t *testing.T) { watchParity(t, a, legacyGRPC) })
}

// watchParity checks the demo's migrated stream: WatchOrder through figway
// is the worker's stream of ten events, whose first is legacy's first, and
// the README's curl lines stream it over REST.
func watchParity(t *testing.T, a addrs, legacyGRPC string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watch := func(addr string) grpc.ServerStreamingClient[ordersv1.OrderEvent] {
		s, err := ordersv1.NewOrderServiceClient(figwaytest.Dial(t, addr)).WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: "o-1"})
		if err != nil {
			t.Fatalf("WatchOrder at %s: %v", addr, err)
		}
		return s
	}
	legacy := watch(legacyGRPC)
	first, err := legacy.Recv()
	if err != nil {
		t.Fatalf("legacy's WatchOrder: %v", err)
	}
	start := time.Now()
	migrated := watch(a.grpc)
	var events []*ordersv1.OrderEvent
	for {
		ev, err := migrated.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("WatchOrder through figway after %d events: %v", len(events), err)
		}
		events = append(events, ev)
	}
	if len(events) != 10 || !proto.Equal(events[0], first) {
		t.Errorf("WatchOrder through figway = %d events, the first %v; want 10, the first as legacy's %v", len(events), events[0], first)
	}
	// The worker's pace is 50ms here; legacy's a second.
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("WatchOrder through figway took %v; want the worker's stream, 10 events 50ms apart", took)
	}

	// The README's lines.
	for _, tc := range []struct {
		args   []string
		prefix string
	}{
		{[]string{"-sN", a.http + "/v1/orders/o-1:watch"}, `{"result":{"orderId":"o-1","status":"ORDER_STATUS_PLACED","at":"`},
		{[]string{"-sN", "-H", "Accept: text/event-stream", a.http + "/v1/orders/o-1:watch"}, `data: {"orderId":"o-1","status":"ORDER_STATUS_PLACED","at":"`},
	} {
		out := curl(t, tc.args...)
		var n int
		for line := range strings.Lines(out) {
			if line == "\n" {
				continue // between two server-sent events
			}
			if !strings.HasPrefix(line, tc.prefix) {
				t.Errorf("curl %s: line %q; want it to start %s", strings.Join(tc.args, " "), line, tc.prefix)
			}
			n++
		}
		if n != 10 {
			t.Errorf("curl %s: %d events; want 10:\n%s", strings.Join(tc.args, " "), n, out)
		}
	}
}

// curl runs curl with args and returns what it wrote.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	return proc.Curl(t, args...)
}

// answer is what a REST caller sees of an answer.
type answer struct {
	status         int
	location, body string
	headers        http.Header
}

var (
	idField  = regexp.MustCompile(`("orderId":")[^"]*(")`)
	dateText = regexp.MustCompile(`"\d{4}-\d\d-\d\dT[0-9:.]+Z"`)
)

// masked renders the answer with the order's id and dates replaced.
func (a answer) masked() string {
	id := strings.TrimPrefix(a.location, "/v1/orders/")
	body := idField.ReplaceAllString(a.body, "${1}ID${2}")
	body = dateText.ReplaceAllString(body, `"DATE"`)
	return strings.Join([]string{
		http.StatusText(a.status), "Location: " + strings.Replace(a.location, id, "ID", 1),
		"Content-Type: " + a.headers.Get("Content-Type"), body,
	}, "\n")
}

func placeOrder(t *testing.T, base string) answer {
	t.Helper()
	const order = `{"customerId":"c-1","items":[{"sku":"book","quantity":2,"unitPriceCents":"1250"}],"note":"parity"}`
	req, _ := http.NewRequest("POST", base+"/v1/orders", strings.NewReader(order))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, location: resp.Header.Get("Location"), body: string(b), headers: resp.Header}
}

// runProcess runs cmd until the test ends; its output is shown if the
// test fails.
func runProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	var out proc.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), out.String())
		}
	})
}

// waitConsumers waits until the figway whose admin listener is at admin
// counts a consumer on its routes' queue, as an operator would read it off
// figway_route_consumers (docs/operations.md): until then, its rpc calls
// fail at once with "no consumer".
func waitConsumers(t *testing.T, admin string) {
	t.Helper()
	poll.Until(t, 30*time.Second, "a consumer on the routes' queue", func() bool {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "figway_route_consumers{"); ok {
				_, n, _ := strings.Cut(rest, "} ")
				if v, err := strconv.Atoi(strings.TrimSpace(n)); err == nil && v > 0 {
					return true
				}
			}
		}
		return false
	})
}
