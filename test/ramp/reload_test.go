package ramp

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/figway/figway/internal/testing/poll"
)

// TestRampReload: a reload that changes a ramp's steps moves the ramp, on
// the first figway that loads it, to the largest new step not above its
// weight, once (a reconfigure event); the other figway follows at once,
// and once it loads the same file the ramp goes on to the end.
func TestRampReload(t *testing.T) {
	r := newRig(t, "", "")
	c := r.caller()
	start := time.Now()
	c.upTo(steps[1])
	if _, err := r.act(0, "pause"); err != nil { // hold it at 25 % while the files change
		t.Fatal(err)
	}
	rewrite := func(i int) {
		b, err := os.ReadFile(r.paths[i])
		if err != nil {
			t.Fatal(err)
		}
		out := strings.Replace(string(b), "steps: [10, 25, 50, 100]", "steps: [20, 40, 100]", 1)
		if err := os.WriteFile(r.paths[i], []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rewrite(0)
	changed := time.Now()
	poll.Until(t, 20*time.Second, "both figways at 20 %", func() bool { return r.status(0).Weight == 20 && r.status(1).Weight == 20 })
	t.Logf("reconfigured to 20 %% on both figways %v after the file changed", time.Since(changed).Round(time.Millisecond))
	rewrite(1)
	time.Sleep(time.Second) // B loads its file: same steps, nothing appended
	for i := range r.addrs {
		if st := r.status(i); st.Counts["reconfigure"] != 1 || !st.Paused {
			t.Errorf("figway %d: %v, paused %v; want one reconfigure, still paused", i, st.Counts, st.Paused)
		}
	}
	if _, err := r.act(1, "resume"); err != nil {
		t.Fatal(err)
	}
	c.toTheEnd(start.Add(120 * time.Second))
	for i := range r.addrs {
		if st := r.status(i); st.Counts["step"] != 2 || st.Counts["done"] != 1 {
			t.Errorf("figway %d: %v; want 10 → 25 and 20 → 40: two steps, then done", i, st.Counts)
		}
	}
}
