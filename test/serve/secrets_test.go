package serve

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"log/slog"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/app"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// password is the secret of every broker URL below; no output may show it,
// nor a piece of it.
const password = "S3cr/Et#Pw?9xq"

// passwordPieces are the parts of password a URL parser splits it into.
var passwordPieces = []string{password, "S3cr", "Et#Pw", "Pw?9xq", "9xq"}

func leaks(out string) string {
	for _, p := range passwordPieces {
		if strings.Contains(out, p) {
			return p
		}
	}
	return ""
}

// TestNoOutputShowsThePassword runs validate, routes and serve on routes
// files with every kind of mistake around a broker URL that holds a
// password (unescaped "/", "#" and "?" included), and checks that no
// output shows any part of it.
func TestNoOutputShowsThePassword(t *testing.T) {
	desc, _ := filepath.Abs("../../examples/orders/orders.binpb")
	raw := "amqp://figway:" + password + "@127.0.0.1:5672/"
	escaped := "amqp://figway:" + strings.NewReplacer("/", "%2F", "#", "%23", "?", "%3F").Replace(password) + "@127.0.0.1:5672/"
	files := map[string]string{
		"urls given a string":            `broker: {urls: "` + escaped + `"}`,
		"broker given a string":          `broker: "` + escaped + `"`,
		"unescaped password in url":      `broker: {url: "` + raw + `"}`,
		"unescaped password in urls":     `broker: {urls: ["` + raw + `"]}`,
		"url given a list":               `broker: {url: ["` + escaped + `"]}`,
		"url and urls":                   `broker: {url: "` + escaped + `", urls: ["` + escaped + `"]}`,
		"port out of range":              `broker: {url: "amqp://figway:` + password + `@127.0.0.1:99999/"}`,
		"scheme wrong":                   `broker: {url: "http://figway:` + password + `@127.0.0.1/"}`,
		"url in an enum":                 `broker: {url: "` + escaped + `", reply: "` + raw + `"}`,
		"url as routes":                  `broker: {url: "` + escaped + `"}` + "\nroutes: \"" + raw + `"`,
		"url as a route's method":        `broker: {url: "` + escaped + `"}` + "\nroutes: [{method: \"" + raw + `", routing_key: k}]`,
		"url as legacy":                  `broker: {url: "` + escaped + `"}` + "\nlegacy: {http: \"" + raw + `"}`,
		"url as an unknown key":          `broker: {url: "` + escaped + `", "` + raw + `": 1}`,
		"url as a listen address":        `broker: {url: "` + escaped + `"}` + "\nserver: {grpc: \"" + raw + `"}`,
		"valid file (routes prints it)":  `broker: {url: "` + escaped + `"}` + "\nroutes: [{method: orders.v1.OrderService/GetOrder, routing_key: k}]",
		"bad percent-escape in password": `broker: {url: "amqp://figway:S3cr%zzEt#Pw?9xq@127.0.0.1/"}`,
	}
	for name, body := range files {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "figway.yaml")
			os.WriteFile(path, []byte("descriptors: ["+desc+"]\n"+body+"\n"), 0o600)
			for _, cmd := range []string{"validate", "routes", "serve"} {
				if cmd == "serve" && strings.HasPrefix(name, "valid file") {
					continue // it would serve; TestRunningFigwayShowsNoPassword runs one
				}
				out, errOut := runFigwayCommand(t, cmd, path)
				if p := leaks(out + errOut); p != "" {
					t.Errorf("figway %s shows %q of the password:\n%s%s", cmd, p, out, errOut)
				}
			}
		})
	}
}

// TestRunningFigwayShowsNoPassword: a running figway's logs (a broker that
// refuses it, a reload refused), metrics and caller errors show no part of
// the password of its broker URLs.
func TestRunningFigwayShowsNoPassword(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	a := figway.NewAddrs(t)
	// First a URL that refuses connections, with the password: its
	// failure is logged; then the real broker.
	dead := "amqp://figway:" + strings.NewReplacer("/", "%2F", "#", "%23", "?", "%3F").Replace(password) + "@" + proc.FreeAddr(t) + "/"
	path := figway.WriteRoutes(t, "", a, url, nil)
	yaml, _ := os.ReadFile(path)
	yaml = []byte(strings.Replace(string(yaml), `url: "`+url+`"`, `urls: ["`+dead+`", "`+url+`"]`, 1))
	os.WriteFile(path, yaml, 0o600)

	logs := &proc.SyncBuffer{}
	figway.ServeApp(t, path, a, true, app.Options{
		Logger:    slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		AccessLog: true,
	})

	// A caller error: no worker, no queue bound for GetOrder's key.
	orders := ordersv1.NewOrderServiceClient(figway.Dial(t, a.GRPC))
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, callErr := orders.GetOrder(cctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
	cancel()
	_, restBody := figway.HTTPGet("http://" + a.HTTP + "/v1/orders/o-1")

	// A reload refused: the password unescaped, with a "/" in it.
	os.WriteFile(path, []byte(strings.Replace(string(yaml), `urls: ["`+dead, `urls: ["amqp://figway:`+password+"@"+proc.FreeAddr(t)+"/", 1)), 0o600)
	poll.Until(t, 10*time.Second, "reload refused", func() bool { return strings.Contains(logs.String(), "reload refused") })
	_, metricsText := figway.HTTPGet("http://" + a.Admin + "/metrics")

	for what, out := range map[string]string{"logs": logs.String(), "metrics": metricsText, "gRPC error": callErr.Error(), "REST error": restBody} {
		if p := leaks(out); p != "" {
			t.Errorf("%s show %q of the password:\n%s", what, p, out)
		}
	}
	if !strings.Contains(logs.String(), "cannot connect to RabbitMQ") {
		t.Errorf("the refused broker was not logged; the test proves nothing:\n%s", logs.String())
	}
}

// runFigwayCommand runs the figway binary's command on the routes file at
// path and returns what it printed; its exit code does not matter here.
func runFigwayCommand(t *testing.T, cmd, path string) (stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	c := exec.Command(proc.BuildFigway(t), cmd, "-config", path)
	c.Stdout, c.Stderr = &o, &e
	c.WaitDelay = 10 * time.Second
	if err := c.Run(); err != nil {
		if _, exited := err.(*exec.ExitError); !exited {
			t.Fatalf("figway %s: %v", cmd, err)
		}
	}
	return o.String(), e.String()
}
