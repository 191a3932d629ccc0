package rabbitmqtest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/figway/figway/internal/rabbitmqtest"
)

func TestMain(m *testing.M) { rabbitmqtest.Main(m) }

// dial connects to url and closes the connection when the test ends.
func dial(t *testing.T, url string) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// publishDurable declares durable queue q and publishes a persistent message
// to it, waiting for the broker's confirm.
func publishDurable(t *testing.T, conn *amqp.Connection, q, body string) {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("Channel: %v", err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatalf("QueueDeclare(%q): %v", q, err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, true, false, amqp.Publishing{
		DeliveryMode: amqp.Persistent,
		Body:         []byte(body),
	})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if ok, err := dc.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("publisher confirm = %v, %v; want ack", ok, err)
	}
}

// get takes one message from q; ok is false if q is empty.
func get(t *testing.T, conn *amqp.Connection, q string) (body string, ok bool) {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("Channel: %v", err)
	}
	defer ch.Close()
	d, ok, err := ch.Get(q, true)
	if err != nil {
		t.Fatalf("Get(%q): %v", q, err)
	}
	return string(d.Body), ok
}

func TestPublishConfirmGet(t *testing.T) {
	n := rabbitmqtest.ForTest(t)
	conn := dial(t, n.NewVHost(t))
	publishDurable(t, conn, "durable", "hello")
	if body, ok := get(t, conn, "durable"); !ok || body != "hello" {
		t.Errorf("Get(durable) = %q, %v; want %q, true", body, ok, "hello")
	}
}

func TestURLAndPort(t *testing.T) {
	n := rabbitmqtest.ForTest(t)
	want := fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.Port())
	if n.URL() != want {
		t.Errorf("URL() = %q; want %q", n.URL(), want)
	}
	if n.Port() == 5672 || n.Port() == 0 {
		t.Errorf("Port() = %d; want a private port", n.Port())
	}
}

func TestCloseAllConnections(t *testing.T) {
	n := rabbitmqtest.ForTest(t)
	conn := dial(t, n.NewVHost(t))
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	begin := time.Now()
	if err := n.CloseAllConnections(context.Background()); err != nil {
		t.Fatalf("CloseAllConnections: %v", err)
	}
	select {
	case err := <-closed:
		if err == nil || err.Code != amqp.ConnectionForced {
			t.Errorf("NotifyClose got %v; want code %d (CONNECTION_FORCED)", err, amqp.ConnectionForced)
		}
		t.Logf("connection closed %v after CloseAllConnections began: %v", time.Since(begin).Round(time.Millisecond), err)
	case <-time.After(10 * time.Second):
		t.Fatal("connection still open 10s after CloseAllConnections")
	}
}

func TestNewVHostIsolates(t *testing.T) {
	n := rabbitmqtest.ForTest(t)
	urlA, urlB := n.NewVHost(t), n.NewVHost(t)
	if urlA == urlB || urlA == n.URL() {
		t.Fatalf("NewVHost URLs %q, %q; want distinct from each other and from %q", urlA, urlB, n.URL())
	}
	a, b := dial(t, urlA), dial(t, urlB)
	publishDurable(t, a, "only-in-a", "x")

	ch, err := b.Channel()
	if err != nil {
		t.Fatalf("Channel: %v", err)
	}
	_, err = ch.QueueDeclarePassive("only-in-a", true, false, false, false, nil)
	var amqpErr *amqp.Error
	if !errors.As(err, &amqpErr) || amqpErr.Code != amqp.NotFound {
		t.Errorf("QueueDeclarePassive(only-in-a) in the other vhost: err = %v; want code %d (NOT_FOUND)", err, amqp.NotFound)
	}
	if body, ok := get(t, a, "only-in-a"); !ok || body != "x" {
		t.Errorf("Get(only-in-a) = %q, %v; want %q, true", body, ok, "x")
	}
}

func TestMemoryAlarmBlocksPublishers(t *testing.T) {
	n := rabbitmqtest.Own(t)
	conn := dial(t, n.URL())
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("Channel: %v", err)
	}
	ctx := context.Background()

	begin := time.Now()
	if err := n.SetMemoryHighWatermark(ctx, 0.000001); err != nil {
		t.Fatalf("SetMemoryHighWatermark(0.000001): %v", err)
	}
	// RabbitMQ blocks a connection (and says so) once it publishes under an
	// alarm; a connection that only consumes is left alone. This publish goes
	// into the socket buffer and is not read until the alarm clears.
	if err := ch.PublishWithContext(ctx, "", "nowhere", false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case b := <-blocked:
		if !b.Active {
			t.Fatalf("first NotifyBlocked = %+v; want Active", b)
		}
		t.Logf("connection.blocked %q %v after raising the alarm", b.Reason, time.Since(begin).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatal("no connection.blocked 20s after raising the memory alarm")
	}

	begin = time.Now()
	if err := n.SetMemoryHighWatermark(ctx, 0.4); err != nil {
		t.Fatalf("SetMemoryHighWatermark(0.4): %v", err)
	}
	select {
	case b := <-blocked:
		if b.Active {
			t.Fatalf("second NotifyBlocked = %+v; want not Active", b)
		}
		t.Logf("connection.unblocked %v after clearing the alarm", time.Since(begin).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatal("no connection.unblocked 20s after clearing the memory alarm")
	}
}

func TestKillRestartStop(t *testing.T) {
	n := rabbitmqtest.Own(t)
	ctx := context.Background()
	conn := dial(t, n.URL())
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	publishDurable(t, conn, "survivor", "one")
	publishDurable(t, conn, "survivor", "two")

	begin := time.Now()
	if err := n.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	t.Logf("Kill took %v", time.Since(begin).Round(time.Millisecond))
	select {
	case err := <-closed:
		t.Logf("client saw the crash: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("client connection still open 10s after Kill")
	}
	if err := n.Kill(); err == nil {
		t.Error("Kill of a killed node = nil; want an error")
	}
	if _, err := amqp.Dial(n.URL()); err == nil {
		t.Fatal("Dial after Kill succeeded")
	}

	begin = time.Now()
	if err := n.Restart(ctx); err != nil {
		t.Fatalf("Restart after Kill: %v", err)
	}
	t.Logf("Restart after Kill took %v", time.Since(begin).Round(time.Millisecond))
	if err := n.Restart(ctx); err == nil {
		t.Error("Restart of a running node = nil; want an error")
	}
	conn = dial(t, n.URL())
	if body, ok := get(t, conn, "survivor"); !ok || body != "one" {
		t.Errorf("after Kill and Restart, Get(survivor) = %q, %v; want %q, true", body, ok, "one")
	}
	conn.Close()

	begin = time.Now()
	if err := n.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("Stop took %v", time.Since(begin).Round(time.Millisecond))
	if err := n.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v; want nil", err)
	}
	if _, err := n.Ctl(ctx, "status"); err == nil {
		t.Error("Ctl(status) of a stopped node = nil error; want an error")
	}

	begin = time.Now()
	if err := n.Restart(ctx); err != nil {
		t.Fatalf("Restart after Stop: %v", err)
	}
	t.Logf("Restart after Stop took %v", time.Since(begin).Round(time.Millisecond))
	conn = dial(t, n.URL())
	if body, ok := get(t, conn, "survivor"); !ok || body != "two" {
		t.Errorf("after Stop and Restart, Get(survivor) = %q, %v; want %q, true", body, ok, "two")
	}
}

func TestExternal(t *testing.T) {
	private := rabbitmqtest.ForTest(t)
	t.Setenv("FIGWAY_TEST_AMQP_URL", private.URL())
	n := rabbitmqtest.ForTest(t)
	if n.URL() != private.URL() || n.Port() != private.Port() {
		t.Errorf("external node URL, Port = %q, %d; want %q, %d", n.URL(), n.Port(), private.URL(), private.Port())
	}
	dial(t, n.URL())
	ctx := context.Background()
	if _, err := n.Ctl(ctx, "status"); !errors.Is(err, rabbitmqtest.ErrExternal) {
		t.Errorf("Ctl = %v; want ErrExternal", err)
	}
	for name, err := range map[string]error{
		"CloseAllConnections":    n.CloseAllConnections(ctx),
		"SetMemoryHighWatermark": n.SetMemoryHighWatermark(ctx, 0.4),
		"Kill":                   n.Kill(),
		"Restart":                n.Restart(ctx),
		"Stop":                   n.Stop(ctx),
	} {
		if !errors.Is(err, rabbitmqtest.ErrExternal) {
			t.Errorf("%s = %v; want ErrExternal", name, err)
		}
	}
	if err := n.Close(); err != nil {
		t.Errorf("Close = %v; want nil", err)
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"rabbitmq-server", "rabbitmqctl"} {
		script := "#!/bin/sh\necho 'BOOT FAILED: no erlang here' >&2\nexit 3\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("FIGWAY_RABBITMQ_SERVER", filepath.Join(dir, "rabbitmq-server"))
	n, err := rabbitmqtest.Start(context.Background())
	if err == nil {
		n.Close()
		t.Fatal("Start with a failing rabbitmq-server = nil error")
	}
	if !strings.Contains(err.Error(), "BOOT FAILED: no erlang here") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Start error = %v; want the exit status and the node's output", err)
	}
}

// recorder is a testing.TB that records a Skipf or Fatalf instead of ending
// the real test.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper()             {}
func (r *recorder) Cleanup(func())      {}
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Skipf(f string, a ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(f, a...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(f string, a ...any) {
	r.failed, r.msg = true, fmt.Sprintf(f, a...)
	runtime.Goexit()
}

func TestMissingBroker(t *testing.T) {
	t.Setenv("FIGWAY_RABBITMQ_SERVER", filepath.Join(t.TempDir(), "rabbitmq-server"))
	for _, tc := range []struct {
		ci                  string
		wantSkip, wantFatal bool
	}{
		{ci: "", wantSkip: true},
		{ci: "false", wantSkip: true},
		{ci: "true", wantFatal: true},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				rabbitmqtest.Own(r)
			}()
			<-done
			if r.skipped != tc.wantSkip || r.failed != tc.wantFatal {
				t.Errorf("Own: skipped, failed = %v, %v; want %v, %v", r.skipped, r.failed, tc.wantSkip, tc.wantFatal)
			}
			for _, want := range []string{"rabbitmq-server is not installed", "apt-get install rabbitmq-server", "make test"} {
				if !strings.Contains(r.msg, want) {
					t.Errorf("message %q does not contain %q", r.msg, want)
				}
			}
		})
	}
}
