// Package deploy holds the container and Kubernetes files; its test checks
// that they parse and agree with each other and with figway (no Docker
// engine or cluster needed).
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/figway/figway/config"
)

type doc = map[string]any

// docs reads every YAML document of file.
func docs(t *testing.T, file string) []doc {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []doc
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d doc
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if d != nil {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no YAML document", file)
	}
	return out
}

// at walks d along keys (string keys of mappings, int indexes of lists).
func at(t *testing.T, d any, keys ...any) any {
	t.Helper()
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := d.(map[string]any)
			if !ok {
				t.Fatalf("at %v: %T is not a mapping", keys, d)
			}
			d = m[k]
		case int:
			l, ok := d.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("at %v: no item %d", keys, k)
			}
			d = l[k]
		}
	}
	return d
}

func str(t *testing.T, d any, keys ...any) string {
	t.Helper()
	return fmt.Sprint(at(t, d, keys...))
}

// validRoutes loads a routes file the way figway does, its descriptors
// replaced by the example's descriptor set.
func validRoutes(t *testing.T, name, routes string) *config.Config {
	t.Helper()
	desc, _ := filepath.Abs("../examples/orders/orders.binpb")
	re := regexp.MustCompile(`(?m)^(\s*)descriptors: .*$`)
	routes = re.ReplaceAllString(routes, "${1}descriptors: ["+desc+"]")
	path := filepath.Join(t.TempDir(), "figway.yaml")
	os.WriteFile(path, []byte(routes), 0o600)
	c, err := config.Load(path)
	if err != nil {
		t.Fatalf("%s does not validate: %v", name, err)
	}
	return c
}

func dockerStages(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages []string
	for _, m := range regexp.MustCompile(`(?m)^FROM \S+ AS (\S+)$`).FindAllStringSubmatch(string(b), -1) {
		stages = append(stages, m[1])
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	stages := dockerStages(t)
	if !slices.Equal(stages, []string{"build", "base", "orders-worker", "orders-legacy", "figway"}) {
		t.Errorf("Dockerfile stages = %v; want build, base, the two demo services and figway last (the default target)", stages)
	}
	for _, want := range []string{"FROM scratch AS base", "CGO_ENABLED=0", "USER 65532:65532", `ENTRYPOINT ["/figway"]`, "./cmd/figway"} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

func TestCompose(t *testing.T) {
	c := docs(t, "compose.yaml")[0]
	services, _ := at(t, c, "services").(map[string]any)
	nodes := []string{"rabbitmq-1", "rabbitmq-2", "rabbitmq-3"}
	for _, name := range append(slices.Clone(nodes), "legacy", "worker", "figway") {
		if services[name] == nil {
			t.Fatalf("compose.yaml lacks the service %s", name)
		}
	}
	// Three nodes, one cluster: the same cookie, the peer discovery
	// config mounted, each node named there by its hostname.
	conf, err := os.ReadFile("rabbitmq.conf")
	if err != nil {
		t.Fatal(err)
	}
	cookie := str(t, c, "services", nodes[0], "environment", "RABBITMQ_ERLANG_COOKIE")
	for _, name := range nodes {
		if img := str(t, c, "services", name, "image"); !strings.Contains(img, "management") {
			t.Errorf("%s image %q; want one with the management plugin", name, img)
		}
		if got := str(t, c, "services", name, "environment", "RABBITMQ_ERLANG_COOKIE"); got != cookie || cookie == "<nil>" {
			t.Errorf("%s's Erlang cookie %q; want one shared by every node", name, got)
		}
		if h := str(t, c, "services", name, "hostname"); h != name {
			t.Errorf("%s's hostname %q; want %q", name, h, name)
		}
		if !strings.Contains(string(conf), "= rabbit@"+name+"\n") {
			t.Errorf("rabbitmq.conf does not list rabbit@%s", name)
		}
		if v := fmt.Sprint(at(t, c, "services", name, "volumes")); !strings.Contains(v, "./rabbitmq.conf:/etc/rabbitmq/") {
			t.Errorf("%s's volumes %v; want rabbitmq.conf mounted", name, v)
		}
	}
	if !strings.Contains(string(conf), "peer_discovery_backend = classic_config") {
		t.Error("rabbitmq.conf: want classic config peer discovery")
	}
	worker := fmt.Sprint(at(t, c, "services", "worker", "command"))
	for _, name := range nodes {
		if !strings.Contains(worker, "@"+name+":5672/") {
			t.Errorf("worker command %s lacks node %s", worker, name)
		}
	}
	if !strings.Contains(worker, "-queue-type quorum") {
		t.Errorf("worker command %s; want -queue-type quorum, as figway's topology declares it", worker)
	}
	stages := dockerStages(t)
	for _, name := range []string{"legacy", "worker", "figway"} {
		if target := str(t, c, "services", name, "build", "target"); !slices.Contains(stages, target) {
			t.Errorf("service %s builds target %q; the Dockerfile's stages are %v", name, target, stages)
		}
	}
	var routes string
	for _, v := range at(t, c, "services", "figway", "volumes").([]any) {
		src := strings.Split(fmt.Sprint(v), ":")[0]
		if _, err := os.Stat(src); err != nil {
			t.Errorf("figway volume %v: %v", v, err)
		}
		if strings.HasSuffix(src, "figway.yaml") {
			b, _ := os.ReadFile(src)
			routes = string(b)
		}
	}
	cfg := validRoutes(t, "deploy/figway.yaml", routes)
	if len(cfg.Broker.URLs) != len(nodes) {
		t.Errorf("figway's broker.urls has %d URLs; want one per node", len(cfg.Broker.URLs))
	}
	for i, u := range cfg.Broker.URLs {
		if i < len(nodes) && !strings.Contains(u, "@"+nodes[i]+":5672/") {
			t.Errorf("broker.urls[%d] is not node %s", i, nodes[i])
		}
	}
	for _, q := range cfg.Topology.Queues {
		if q.Type != "quorum" {
			t.Errorf("queue %s is %q; want quorum: it must survive a node", q.Name, q.Type)
		}
	}
	ports := fmt.Sprint(at(t, c, "services", "figway", "ports"))
	for _, addr := range []string{cfg.Server.GRPC, cfg.Server.HTTP, cfg.Server.Admin} {
		port := addr[strings.LastIndex(addr, ":")+1:]
		if !strings.Contains(ports, "127.0.0.1:"+port+":"+port) {
			t.Errorf("compose publishes %s; want figway's port %s on 127.0.0.1", ports, port)
		}
	}
	// Nothing is published on every interface of the host: the demo's
	// broker credentials are public, and the admin port shows internals.
	for name := range services {
		ps, _ := at(t, c, "services", name, "ports").([]any)
		for _, p := range ps {
			if !strings.HasPrefix(fmt.Sprint(p), "127.0.0.1:") {
				t.Errorf("service %s publishes %v on every interface; want 127.0.0.1:", name, p)
			}
		}
	}
	grace, err := time.ParseDuration(str(t, c, "services", "figway", "stop_grace_period"))
	if err != nil || grace <= cfg.Server.ShutdownGrace {
		t.Errorf("stop_grace_period %v; want more than shutdown_grace %v", grace, cfg.Server.ShutdownGrace)
	}
}

func TestKubernetes(t *testing.T) {
	kust := docs(t, "k8s/kustomization.yaml")[0]
	byKind := map[string][]doc{}
	for _, r := range at(t, kust, "resources").([]any) {
		for _, d := range docs(t, filepath.Join("k8s", fmt.Sprint(r))) {
			if str(t, d, "apiVersion") == "" || str(t, d, "metadata", "name") == "" {
				t.Errorf("%v: a document without apiVersion or metadata.name", r)
			}
			byKind[str(t, d, "kind")] = append(byKind[str(t, d, "kind")], d)
		}
	}
	for _, kind := range []string{"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"} {
		if len(byKind[kind]) == 0 {
			t.Fatalf("deploy/k8s has no %s", kind)
		}
	}
	cm := byKind["ConfigMap"][0]
	cfg := validRoutes(t, "the routes ConfigMap", str(t, cm, "data", "figway.yaml"))

	dep := byKind["Deployment"][0]
	pod := at(t, dep, "spec", "template")
	labels := fmt.Sprint(at(t, pod, "metadata", "labels"))
	ctr := at(t, pod, "spec", "containers", 0)
	ports := map[string]string{}
	for _, p := range at(t, ctr, "ports").([]any) {
		ports[str(t, p, "name")] = str(t, p, "containerPort")
	}
	for name, addr := range map[string]string{"grpc": cfg.Server.GRPC, "http": cfg.Server.HTTP, "admin": cfg.Server.Admin} {
		if !strings.HasSuffix(addr, ":"+ports[name]) {
			t.Errorf("container port %s = %q; the routes file listens on %s", name, ports[name], addr)
		}
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		if got := str(t, ctr, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path = %q; want %s", probe, got, path)
		}
		if port := str(t, ctr, probe, "httpGet", "port"); ports[port] == "" {
			t.Errorf("%s port %q is no container port", probe, port)
		}
	}
	// The config path of the args is a mounted ConfigMap key; the
	// descriptors are where the routes file says.
	mounts := map[string]string{} // mount path → ConfigMap
	vols := map[string]string{}
	for _, v := range at(t, pod, "spec", "volumes").([]any) {
		vols[str(t, v, "name")] = str(t, v, "configMap", "name")
	}
	for _, m := range at(t, ctr, "volumeMounts").([]any) {
		mounts[str(t, m, "mountPath")] = vols[str(t, m, "name")]
	}
	args := fmt.Sprint(at(t, ctr, "args"))
	found := false
	for dir, cmName := range mounts {
		if cmName == str(t, cm, "metadata", "name") && strings.Contains(args, dir+"/figway.yaml") {
			found = true
		}
	}
	if !found {
		t.Errorf("args %s name no figway.yaml of a mounted %s", args, str(t, cm, "metadata", "name"))
	}
	descDir := ""
	for dir, cmName := range mounts {
		if cmName == "figway-descriptors" {
			descDir = dir
		}
	}
	routes := str(t, cm, "data", "figway.yaml")
	if descDir == "" || !strings.Contains(routes, "descriptors: ["+descDir+"/orders.binpb]") {
		t.Errorf("the descriptors ConfigMap is mounted at %q; the routes file reads %s", descDir, regexp.MustCompile(`descriptors: .*`).FindString(routes))
	}
	grace := at(t, pod, "spec", "terminationGracePeriodSeconds").(uint64)
	preStop := at(t, ctr, "lifecycle", "preStop", "sleep", "seconds").(uint64)
	if time.Duration(grace)*time.Second <= cfg.Server.ShutdownGrace+time.Duration(preStop)*time.Second {
		t.Errorf("terminationGracePeriodSeconds %d; want more than preStop %ds + shutdown_grace %v", grace, preStop, cfg.Server.ShutdownGrace)
	}
	for _, d := range append(byKind["Service"], byKind["PodDisruptionBudget"]...) {
		sel := at(t, d, "spec", "selector")
		if str(t, d, "kind") == "PodDisruptionBudget" {
			sel = at(t, sel, "matchLabels")
		}
		for k, v := range sel.(map[string]any) {
			if !strings.Contains(labels, fmt.Sprintf("%s:%v", k, v)) {
				t.Errorf("%s %s selects %s=%v; the pods are labelled %s", str(t, d, "kind"), str(t, d, "metadata", "name"), k, v, labels)
			}
		}
		if str(t, d, "kind") == "Service" {
			for _, p := range at(t, d, "spec", "ports").([]any) {
				if ports[str(t, p, "targetPort")] == "" {
					t.Errorf("Service %s targets port %q, which the container lacks", str(t, d, "metadata", "name"), str(t, p, "targetPort"))
				}
			}
		}
	}
}
