// Package jaeger runs a private Jaeger all-in-one for tests: OTLP in
// (gRPC and HTTP), the query API out, spans kept in memory, every port a
// free loopback port. scripts/jaeger.sh builds the binary into .bin/jaeger;
// FIGWAY_JAEGER names another one.
package jaeger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/figway/figway/internal/testing/broker"
)

// Server is one running Jaeger all-in-one.
type Server struct {
	bin, config string
	// OTLPGRPC and OTLPHTTP are the OTLP receivers' host:port; Query is
	// the query API's and UI's base URL, http://host:port.
	OTLPGRPC, OTLPHTTP, Query string
	cmd                       *exec.Cmd
	exited                    chan struct{}
	log                       *os.File
}

// Binary returns the path of the Jaeger binary: FIGWAY_JAEGER, or .bin/jaeger
// at the repository's root, if it exists.
func Binary() (string, error) {
	if p := os.Getenv("FIGWAY_JAEGER"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, ".bin", "jaeger")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("no Jaeger at %s: run scripts/jaeger.sh ensure (or set FIGWAY_JAEGER)", p)
			}
			return p, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = up
	}
}

// Start starts a Jaeger for t on free loopback ports and stops it when t
// ends. Without a binary it skips t, or fails it when CI=true.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("jaeger: %v (CI=true: a missing Jaeger fails the test)", err)
		}
		t.Skipf("jaeger: %v (skipped; with CI=true it would fail)", err)
	}
	ports := make([]int, 4)
	for i := range ports {
		if ports[i], err = broker.FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	j := &Server{bin: bin, OTLPGRPC: addr(0), OTLPHTTP: addr(1), Query: "http://" + addr(2)}
	j.config = filepath.Join(t.TempDir(), "jaeger.yaml")
	cfg := strings.NewReplacer("OTLPGRPC", addr(0), "OTLPHTTP", addr(1), "QUERYHTTP", addr(2), "QUERYGRPC", addr(3)).Replace(configTemplate)
	if err := os.WriteFile(j.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if j.log, err = os.Create(filepath.Join(t.TempDir(), "jaeger.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		j.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(j.log.Name())
			t.Logf("jaeger's log:\n%s", tail(b, 4000))
		}
		j.log.Close()
	})
	begin := time.Now()
	if err := j.start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("jaeger: Jaeger up in %v (OTLP gRPC %s, HTTP %s; query %s)", time.Since(begin).Round(time.Millisecond), j.OTLPGRPC, j.OTLPHTTP, j.Query)
	return j
}

// configTemplate is Jaeger v2's all-in-one configuration with every port
// its own, no telemetry port, and memory storage.
const configTemplate = `
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: QUERYHTTP
    grpc:
      endpoint: QUERYGRPC
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: OTLPGRPC
      http:
        endpoint: OTLPHTTP
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`

// start runs the binary and waits until the query API answers.
func (j *Server) start() error {
	j.cmd = exec.Command(j.bin, "--config", j.config)
	j.cmd.Stdout, j.cmd.Stderr = j.log, j.log
	if err := j.cmd.Start(); err != nil {
		return fmt.Errorf("jaeger: start %s: %w", j.bin, err)
	}
	j.exited = make(chan struct{})
	go func() { j.cmd.Wait(); close(j.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-j.exited:
			b, _ := os.ReadFile(j.log.Name())
			return fmt.Errorf("jaeger: Jaeger exited at start: %s", tail(b, 2000))
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := http.Get(j.Query + "/api/services"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	j.Stop()
	return errors.New("jaeger: Jaeger's query API did not answer within 60s")
}

// Stop stops Jaeger (SIGKILL: nothing it holds needs saving). It may be
// called more than once.
func (j *Server) Stop() {
	if j.cmd == nil || j.cmd.Process == nil {
		return
	}
	select {
	case <-j.exited:
		return
	default:
	}
	j.cmd.Process.Kill()
	<-j.exited
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Trace is one trace as the query API returns it (/api/traces/{id}).
type Trace struct {
	TraceID   string             `json:"traceID"`
	Spans     []Span             `json:"spans"`
	Processes map[string]Process `json:"processes"`
}

// Span is a span of a [Trace].
type Span struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []Reference `json:"references"`
	StartTime     int64       `json:"startTime"` // µs since the epoch
	Duration      int64       `json:"duration"`  // µs
	Tags          []KeyValue  `json:"tags"`
	Logs          []struct {
		Timestamp int64      `json:"timestamp"`
		Fields    []KeyValue `json:"fields"`
	} `json:"logs"`
	ProcessID string `json:"processID"`
}

// Reference is a span's parent (CHILD_OF) or a link (FOLLOWS_FROM).
type Reference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// KeyValue is a tag or a log field.
type KeyValue struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// Process is the resource of a span: its service.
type Process struct {
	ServiceName string     `json:"serviceName"`
	Tags        []KeyValue `json:"tags"`
}

// Tag returns the value of s's tag key, rendered as text, and whether s has it.
func (s Span) Tag(key string) (string, bool) {
	for _, kv := range s.Tags {
		if kv.Key == key {
			return fmt.Sprint(kv.Value), true
		}
	}
	return "", false
}

// Kind returns s's span kind: server, client, producer, consumer or internal.
func (s Span) Kind() string {
	k, ok := s.Tag("span.kind")
	if !ok {
		return "internal"
	}
	return k
}

// Parent returns the span id of s's parent, or "".
func (s Span) Parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// Events returns the names of s's events (Jaeger's logs), in order.
func (s Span) Events() []string {
	var names []string
	for _, l := range s.Logs {
		for _, f := range l.Fields {
			if f.Key == "event" {
				names = append(names, fmt.Sprint(f.Value))
			}
		}
	}
	return names
}

// GetTrace returns the trace id as Jaeger holds it now, or an error
// (not found included).
func (j *Server) GetTrace(ctx context.Context, id string) (*Trace, error) {
	var out struct {
		Data   []Trace `json:"data"`
		Errors []struct {
			Msg string `json:"msg"`
		} `json:"errors"`
	}
	if err := j.get(ctx, "/api/traces/"+id, &out); err != nil {
		return nil, err
	}
	if len(out.Data) == 0 {
		return nil, fmt.Errorf("trace %s not found (%v)", id, out.Errors)
	}
	return &out.Data[0], nil
}

// FindTraces returns the traces of service, newest first, at most limit.
func (j *Server) FindTraces(ctx context.Context, service string, limit int) ([]Trace, error) {
	var out struct {
		Data []Trace `json:"data"`
	}
	err := j.get(ctx, "/api/traces?service="+service+"&limit="+strconv.Itoa(limit)+"&lookback=1h", &out)
	return out.Data, err
}

func (j *Server) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.Query+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, tail(b, 500))
	}
	return json.Unmarshal(b, v)
}

// WaitTrace polls for trace id until it has at least spans spans, or
// fails t after 20s with what it found.
func (j *Server) WaitTrace(t testing.TB, id string, spans int) *Trace {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var last *Trace
	var lastErr error
	for ctx.Err() == nil {
		tr, err := j.GetTrace(ctx, id)
		if err == nil && len(tr.Spans) >= spans {
			return tr
		}
		last, lastErr = tr, err
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	if last != nil {
		t.Fatalf("trace %s has %d spans after 20s; want %d:\n%s", id, len(last.Spans), spans, last.Tree())
	}
	t.Fatalf("trace %s not in Jaeger after 20s: %v", id, lastErr)
	return nil
}
