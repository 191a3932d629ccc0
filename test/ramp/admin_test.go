package ramp

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// TestRampRestartResumes: a figway restarted mid-ramp serves the ramp's
// step as soon as it is ready, appends no start of its own, and the ramp
// goes on to the end. The operator's CLI pauses and resumes it.
func TestRampRestartResumes(t *testing.T) {
	r := newRig(t, "", "")
	c := r.caller()
	start := time.Now()
	c.upTo(steps[2])
	before := r.status(0)
	r.procs[1].Cmd.Process.Signal(syscall.SIGTERM)
	<-r.procs[1].Exited
	restart := time.Now()
	r.procs[1] = figway.Run(t, r.bin, r.paths[1], r.addrs[1])
	after := r.status(1)
	t.Logf("restarted figway ready %v after its start, at %d %% (epoch %d); the other at %d %% (epoch %d)",
		time.Since(restart).Round(time.Millisecond), after.Weight, after.Epoch, before.Weight, before.Epoch)
	if after.Weight != before.Weight || after.Epoch != before.Epoch {
		t.Fatalf("restarted figway at %d %% epoch %d; want %d %% epoch %d", after.Weight, after.Epoch, before.Weight, before.Epoch)
	}

	// The CLI, on the loopback admin listener: no token needed.
	out, err := exec.Command(r.bin, "ramp", "pause", "-config", r.paths[1], "-reason", "a look at the dashboards", getOrder).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "paused") || !strings.Contains(string(out), "a look at the dashboards") {
		t.Fatalf("figway ramp pause = %v\n%s", err, out)
	}
	if st := r.status(0); !st.Paused || st.Weight != before.Weight {
		t.Fatalf("after figway ramp pause on B, A shows %+v; want paused at %d %%", st, before.Weight)
	}
	out, err = exec.Command(r.bin, "ramp", "status", "-config", r.paths[0]).CombinedOutput()
	t.Logf("figway ramp status:\n%s", out)
	if err != nil || !strings.Contains(string(out), getOrder) {
		t.Fatalf("figway ramp status = %v\n%s", err, out)
	}
	if out, err := exec.Command(r.bin, "ramp", "resume", "-config", r.paths[0], getOrder).CombinedOutput(); err != nil {
		t.Fatalf("figway ramp resume = %v\n%s", err, out)
	}
	c.toTheEnd(start.Add(90 * time.Second))
	for i := range r.addrs {
		if st := r.status(i); st.Counts["start"] != 1 || st.Counts["pause"] != 1 || st.Counts["resume"] != 1 || st.Counts["done"] != 1 {
			t.Errorf("figway %d read the events %v; want one start, pause, resume and done", i, st.Counts)
		}
	}
}

// TestRampAdminRefusedOffLoopback: an admin listener that is not on
// loopback refuses a mutation without server.admin_token_file's token,
// or with another, and takes one with it; reading needs none.
func TestRampAdminRefusedOffLoopback(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	legacy := startLegacy(t)
	a := figway.NewAddrs(t)
	_, port, _ := strings.Cut(a.Admin, ":")
	dir := t.TempDir()
	token := "0123456789abcdef0123456789abcdef"
	os.WriteFile(filepath.Join(dir, "admin.token"), []byte(token+"\n"), 0o600)
	// The listener takes every address of the host; the test talks to it
	// on loopback only.
	yaml := strings.NewReplacer("GRPC", a.GRPC, "HTTP", a.HTTP, "ADMIN", "0.0.0.0:"+port, "DESC", figway.Descriptors,
		"BROKER", url, "LEGACY", legacy, "ROUTE", "", " GATE", "",
		"shutdown_grace: 2s}", "shutdown_grace: 2s, admin_token_file: admin.token}").Replace(rampRoutes)
	path := filepath.Join(dir, "figway.yaml")
	os.WriteFile(path, []byte(yaml), 0o600)
	begin := time.Now()
	figway.Run(t, proc.BuildFigway(t), path, a)
	t.Logf("figway ready in %v", time.Since(begin).Round(time.Millisecond))

	post := func(auth string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+a.Admin+"/v1/ramps/"+getOrder+":pause", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}
	for _, auth := range []string{"", "Bearer wrong-token-wrong-token-wrong", token} {
		if code, www := post(auth); code != http.StatusUnauthorized || !strings.HasPrefix(www, "Bearer") {
			t.Errorf("POST :pause with Authorization %q = %d, WWW-Authenticate %q; want 401 Bearer", auth, code, www)
		}
	}
	if st, err := fetchStatus(a.Admin); err != nil || st.Paused {
		t.Fatalf("GET /v1/ramps = %+v, %v; want readable, not paused", st, err)
	}
	if code, _ := post("Bearer " + token); code != http.StatusOK {
		t.Fatalf("POST :pause with the token = %d; want 200", code)
	}
	if st, _ := fetchStatus(a.Admin); !st.Paused {
		t.Errorf("after an allowed pause: %+v; want paused", st)
	}
}
