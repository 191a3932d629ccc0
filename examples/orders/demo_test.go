package orders_test

import (
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
	runProcess(t, exec.Command(filepath.Join(dir, "worker"), "-amqp", url))
	runProcess(t, exec.Command(figway, "serve", "-config", path))
	waitReady(t, a.admin)
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

// waitReady waits for the figway whose admin listener is at admin to
// report ready.
func waitReady(t *testing.T, admin string) {
	t.Helper()
	poll.Until(t, 30*time.Second, "figway ready", func() bool {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
