package ramp

import (
	"html"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/prom"
)

// sides sums figway_canary_calls_total of GetOrder over both figways.
func (r *rig) sides() (broker, legacy float64) {
	for i := range r.addrs {
		s := prom.Get(r.t, "http://"+r.addrs[i].Admin+"/metrics")
		broker += s.Value("figway_canary_calls_total", "route", getOrder, "to", "broker")
		legacy += s.Value("figway_canary_calls_total", "route", getOrder, "to", "legacy")
	}
	return broker, legacy
}

// agreement watches both figways' ramp every 50ms and records when each
// first saw each epoch.
type agreement struct {
	mu   sync.Mutex
	seen [2]map[uint64]time.Time
	stop chan struct{}
	done chan struct{}
}

func (r *rig) watch() *agreement {
	a := &agreement{seen: [2]map[uint64]time.Time{{}, {}}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			for i := range r.addrs {
				if st, err := fetchStatus(r.addrs[i].Admin); err == nil {
					a.mu.Lock()
					if _, ok := a.seen[i][st.Epoch]; !ok {
						a.seen[i][st.Epoch] = time.Now()
					}
					a.mu.Unlock()
				}
			}
			select {
			case <-a.stop:
				return
			case <-t.C:
			}
		}
	}()
	r.t.Cleanup(a.end)
	return a
}

func (a *agreement) end() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.done
}

// worst returns the largest gap between the two figways' first sight of
// the same epoch, and how many epochs both saw.
func (a *agreement) worst() (time.Duration, int) {
	a.end()
	var worst time.Duration
	n := 0
	for e, t0 := range a.seen[0] {
		t1, ok := a.seen[1][e]
		if !ok || e == 0 {
			continue
		}
		n++
		worst = max(worst, t0.Sub(t1).Abs())
	}
	return worst, n
}

// TestRampWalksToTheEnd: with a healthy worker, the ramp walks every step
// to 100 on both figways at once, one step per interval; at each step the
// calls counted per side match the step within ±5 points; callers keep
// their side as the weight grows (sticky_by).
func TestRampWalksToTheEnd(t *testing.T) {
	r := newRig(t, "", "")
	c := r.caller()
	watch := r.watch()
	start := time.Now()
	type count struct{ broker, legacy float64 }
	per := map[int]*count{}
	figways := 0 // the most figways whose figures a gate was judged on
	for !r.status(0).Done || !r.status(1).Done {
		if time.Since(start) > 90*time.Second {
			t.Fatalf("the ramp is not done after %v: %+v", time.Since(start), r.status(0))
		}
		a0, b0 := r.status(0), r.status(1)
		broker0, legacy0 := r.sides()
		c.batch(100)
		broker1, legacy1 := r.sides()
		a1, b1 := r.status(0), r.status(1)
		figways = max(figways, a1.Gate.Figways, b1.Gate.Figways)
		if a0.Epoch != a1.Epoch || b0.Epoch != b1.Epoch || a0.Epoch != b0.Epoch || a0.Done || broker1+legacy1-broker0-legacy0 != 100 {
			continue // the batch straddled a step, or a call failed
		}
		if per[a0.Weight] == nil {
			per[a0.Weight] = &count{}
		}
		per[a0.Weight].broker += broker1 - broker0
		per[a0.Weight].legacy += legacy1 - legacy0
	}
	took := time.Since(start)
	for _, w := range steps[:len(steps)-1] {
		n := per[w]
		if n == nil || n.broker+n.legacy == 0 {
			t.Errorf("no calls counted at %d %%", w)
			continue
		}
		share := n.broker / (n.broker + n.legacy) * 100
		t.Logf("at %d %%: %.0f calls to the broker, %.0f to legacy: %.1f %%", w, n.broker, n.legacy, share)
		if share < float64(w)-5 || share > float64(w)+5 {
			t.Errorf("at %d %%, %.1f %% of the calls went to the broker; want ±5 points", w, share)
		}
	}
	if figways != 2 {
		t.Errorf("the gates were judged on the figures of %d figways at most; want both", figways)
	}
	if f := c.failed.Load(); f != 0 {
		t.Errorf("%d calls failed with a healthy worker", f)
	}
	gap, epochs := watch.worst()
	t.Logf("ramp done in %v; both figways saw each of %d changes within %v of each other", took.Round(time.Millisecond), epochs, gap.Round(time.Millisecond))
	if gap > 2*time.Second {
		t.Errorf("the figways saw a change %v apart; want within 2s", gap)
	}
	for i := range r.addrs {
		st := r.status(i)
		want := map[string]uint64{"start": 1, "step": 2, "done": 1}
		for ev, n := range want {
			if st.Counts[ev] != n {
				t.Errorf("figway %d: %d %s events (%v); want %d (one step per interval)", i, st.Counts[ev], ev, st.Counts, n)
			}
		}
		s := prom.Get(t, "http://"+r.addrs[i].Admin+"/metrics")
		if w := s.Value("figway_route_weight", "route", getOrder); w != 100 {
			t.Errorf("figway %d: figway_route_weight = %v; want 100", i, w)
		}
		if n := s.Value("figway_ramp_events_total", "route", getOrder, "event", "step"); n != 2 {
			t.Errorf("figway %d: figway_ramp_events_total{event=step} = %v; want 2", i, n)
		}
	}
}

// breachCase is a worker that turns bad at the third step, and the gate
// that must catch it.
type breachCase struct {
	route, gate string
	mode        mode
	reason      string
}

// rollsBack runs tc: the ramp walks to the third step, the worker turns
// bad, and both figways must roll back to the second step and pause with
// the reason.
func rollsBack(t *testing.T, tc breachCase) {
	r := newRig(t, tc.route, tc.gate)
	c := r.caller()
	start := time.Now()
	c.upTo(steps[2])
	if st := r.status(0); st.Weight != steps[2] || st.Paused {
		t.Fatalf("at the third step: %+v", st)
	}
	t.Logf("at the third step %v after the start", time.Since(start).Round(time.Millisecond))
	r.mode.Store(int32(tc.mode))
	turned := time.Now()
	for !r.status(0).Paused || !r.status(1).Paused {
		if time.Since(turned) > 45*time.Second {
			t.Fatalf("no rollback %v after the worker turned bad: %+v", time.Since(turned), r.status(0))
		}
		if r.status(0).Done {
			t.Fatalf("the ramp went on to 100 %% with a bad worker: %+v", r.status(0))
		}
		c.batch(20)
	}
	took := time.Since(turned)
	for i := range r.addrs {
		st := r.status(i)
		if st.Weight != steps[1] || !st.Paused || !strings.Contains(st.Reason, tc.reason) || st.Counts["breach"] != 1 {
			t.Errorf("figway %d after the breach: %d %%, paused %v, reason %q, %d breaches; want %d %%, paused, %q, 1",
				i, st.Weight, st.Paused, st.Reason, st.Counts["breach"], steps[1], tc.reason)
		}
	}
	var breach string
	for _, e := range r.status(1).Events {
		if e.Event == "breach" {
			breach = e.Reason
		}
	}
	t.Logf("rolled back to %d %% and paused %v after the worker turned bad: %s", steps[1], took.Round(time.Millisecond), breach)
	// The status page shows the pause and its reason.
	code, page := figway.HTTPGet("http://" + r.addrs[0].Admin + "/")
	if code != 200 || !strings.Contains(page, "Ramp · "+getOrder) || !strings.Contains(page, ">paused<") || !strings.Contains(page, html.EscapeString(breach)) {
		t.Errorf("status page = %d; want the ramp paused with %q", code, breach)
	}
	// Paused: the ramp stays, however long the gate would hold.
	r.mode.Store(int32(healthy))
	held := time.Now()
	c.batch(80)
	time.Sleep(2500 * time.Millisecond)
	if st := r.status(0); st.Weight != steps[1] || !st.Paused {
		t.Errorf("a paused ramp moved: %+v", st)
	}
	t.Logf("held paused for %v", time.Since(held).Round(time.Millisecond))
}

func TestRampRollsBackOnErrors(t *testing.T) {
	rollsBack(t, breachCase{mode: failing, reason: "error rate"})
}

func TestRampRollsBackOnP99(t *testing.T) {
	rollsBack(t, breachCase{gate: ", max_p99: 1500ms", mode: slow, reason: "p99"})
}

func TestRampRollsBackOnShadowMismatch(t *testing.T) {
	rollsBack(t, breachCase{route: "shadow: true\n    compare: true\n    ignore_metadata: [x-served-by]",
		gate: ", max_shadow_mismatch: 5%", mode: drifting, reason: "shadow mismatch"})
}
