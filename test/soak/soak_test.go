package soak

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// defaultDuration is the soak's length in `make test`; `make soak` sets
// FIGWAY_SOAK_DURATION (30m by default).
const defaultDuration = 2 * time.Minute

// The soak lasts 30 minutes, with a reload every 2 minutes, a
// node restarted every 5, the replicas' usage taken at 5, 15 and 30
// minutes and latencies by 5-minute windows. A soak of another length
// keeps the same proportions.
const (
	windows       = 6  // windows of latency, and node restarts (one per window, in its middle)
	reloadsPerRun = 15 // reloads, evenly spaced
)

// Growth allowed between the usage taken after the warm-up (at a sixth
// of the run) and at the end: 10 %, plus a floor for what one sample
// differs from another when nothing leaks — the Go heap's RSS moves by a
// few MiB between collections; a goroutine or descriptor is a caller's
// connection closed or opened a moment apart.
const (
	maxGrowth       = 0.10
	rssFloor        = 8 << 20
	goroutinesFloor = 20
	filesFloor      = 10
)

// duration returns the soak's length: FIGWAY_SOAK_DURATION, or
// defaultDuration.
func duration(t *testing.T) time.Duration {
	s := os.Getenv("FIGWAY_SOAK_DURATION")
	if s == "" {
		return defaultDuration
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Minute {
		t.Fatalf("FIGWAY_SOAK_DURATION=%q: want a duration of at least 1m", s)
	}
	return d
}

// TestSoak runs two figway replicas and two SDK workers on the three-node
// cluster under the mixed load of kinds for duration(t), reloading both
// replicas' routes file (the canary's weight changes) reloadsPerRun
// times, and restarting one node in the middle of each window, each
// restart waiting for the queue's members to be online again. It prints
// one table — calls by outcome; events confirmed, consumed, lost and
// duplicated; each replica's RSS, goroutines and descriptors after the
// warm-up, at half time and at the end; p50 and p99 per window — and
// fails if a confirmed event is lost, a call failed other than
// UNAVAILABLE or DEADLINE_EXCEEDED (a wrong reply, INTERNAL), a replica's
// usage grew, or the last quiet window's median latency drifted from the
// best one's. The failures that overlap no fault (a restart, a lost
// connection) are counted in the table.
func TestSoak(t *testing.T) {
	d := duration(t)
	window := d / windows
	c := rabbitmq.ClusterForTest(t)
	urls := c.URLs()
	legacy := startLegacy(t)
	bin := proc.BuildFigway(t)
	weight := 50
	a := startReplica(t, bin, "a", order(urls, 0), legacy, weight)
	b := startReplica(t, bin, "b", order(urls, 1), legacy, weight)
	seen := &consumed{events: map[string]int{}}
	workerLogs := []*proc.SyncBuffer{startWorker(t, "w1", order(urls, 1), seen), startWorker(t, "w2", order(urls, 2), seen)}
	warmUp(t, a, b)
	t.Logf("soak of %v: a window of %v, a reload every %v, a node restart in the middle of each window", d, window, d/reloadsPerRun)

	rest := restClient(t)
	begin := time.Now()
	tl := newTally(begin, window, windows)
	load, stop := context.WithCancel(context.Background())
	defer stop()
	var g gate
	var callers sync.WaitGroup
	for i, r := range []*replica{a, b} {
		other := []*replica{b, a}[i]
		runCallers(load, &callers, &g, kinds[0].callers/2, tl.grpcGet(r))
		runCallers(load, &callers, &g, kinds[1].callers/2, tl.restGet(rest, r))
		runCallers(load, &callers, &g, kinds[2].callers/2, tl.place(r))
		runCallers(load, &callers, &g, kinds[3].callers/2, tl.export(rest, r, other))
		runCallers(load, &callers, &g, kinds[4].callers/2, tl.list(r))
		runCallers(load, &callers, &g, kinds[5].callers/2, tl.cancel(r))
	}

	var faults sync.WaitGroup
	var restarts []restart
	faults.Go(func() { restarts = restartNodes(t, load, c, begin, window, d) })
	var reloads reloadCount
	faults.Go(func() { reloads = reloadEvery(t, load, d/reloadsPerRun, &weight, a, b) })
	usages := map[string][]usage{}
	for _, at := range []time.Duration{window, d / 2} {
		select {
		case <-load.Done():
		case <-time.After(time.Until(begin.Add(at))):
		}
		sample(t, &g, begin, usages, a, b)
	}
	time.Sleep(time.Until(begin.Add(d)))
	stop()
	callers.Wait()
	faults.Wait()
	sample(t, &g, begin, usages, a, b)

	lost, dups, consumed := drain(tl, seen)
	faultsSeen := faultWindows(restarts, workerLogs, a, b)
	report(t, tl, usages, restarts, faultsSeen, reloads, lost, dups, consumed, seen.shadows)
	check(t, tl, usages, restarts, faultsSeen, reloads, lost)
}

// warmUp waits until each replica has answered a call through the
// workers: the queue is figway's topology, which the workers may have
// waited for.
func warmUp(t *testing.T, rs ...*replica) {
	t.Helper()
	for _, r := range rs {
		poll.Until(t, time.Minute, "replica "+r.name+" serving", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := r.orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "warm-up"})
			return err == nil
		})
	}
}

// restart is one node's restart, from its stop to its queue member's
// return.
type restart struct {
	node           string
	from, to       time.Time
	stopped, ready time.Duration // how long the stop took; from the start until the members were online
}

// restartNodes restarts node k%3 in the middle of window k, one at a
// time (a restart that took longer than a window delays the next), while
// ctx lasts and until a window (at most 2 minutes) before the end (a
// restart takes tens of seconds on a loaded machine), each waiting for
// the queue's members to be online. It returns the restarts.
func restartNodes(t *testing.T, ctx context.Context, c *rabbitmq.Cluster, begin time.Time, window, d time.Duration) []restart {
	var done []restart
	for k := 0; k < windows; k++ {
		select {
		case <-ctx.Done():
			return done
		case <-time.After(time.Until(begin.Add(window*time.Duration(k) + window/2))):
		}
		if d-time.Since(begin) < min(window, 2*time.Minute) {
			break // a restart that began this late would outlast the run
		}
		r, err := restartNode(t, c, c.Nodes[k%len(c.Nodes)])
		if err != nil {
			t.Errorf("restart %s: %v", c.Nodes[k%len(c.Nodes)].Name(), err)
			return done
		}
		done = append(done, r)
	}
	return done
}

// restartNode stops n cleanly, starts it again and waits until the
// request queue's members are all online.
func restartNode(t *testing.T, c *rabbitmq.Cluster, n *rabbitmq.Node) (restart, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := restart{node: n.Name(), from: time.Now()}
	if err := n.Stop(ctx); err != nil {
		return r, err
	}
	r.stopped = time.Since(r.from)
	if err := n.Restart(ctx); err != nil {
		return r, err
	}
	waitOnline(t, ctx, c, requestQueue)
	r.to = time.Now()
	r.ready = r.to.Sub(r.from) - r.stopped
	return r, nil
}

// reloadCount is what the reloads did.
type reloadCount struct{ written, ok, failed int }

// reloadEvery rewrites both replicas' routes file every interval, the
// canary's weight going from 50 to 25 to 75 and back, and waits for each
// replica to have reloaded it (figway_config_reloads_total{result="ok"}).
func reloadEvery(t *testing.T, ctx context.Context, interval time.Duration, weight *int, rs ...*replica) reloadCount {
	var n reloadCount
	before := make([]float64, len(rs))
	for i, r := range rs {
		before[i], _, _ = r.reloads()
	}
	weights := []int{25, 75, 50}
	for k := 0; ; k++ {
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
		if ctx.Err() != nil {
			break
		}
		*weight = weights[k%len(weights)]
		for _, r := range rs {
			r.write(t, *weight)
		}
		n.written++
		for i, r := range rs {
			ok := false
			for deadline := time.Now().Add(30 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				got, _, err := r.reloads()
				ok = err == nil && got > before[i]
				if ok {
					before[i] = got
				}
			}
			if !ok {
				t.Errorf("replica %s: reload %d not done within 30s", r.name, n.written)
			}
		}
	}
	for _, r := range rs {
		ok, failed, err := r.reloads()
		if err != nil {
			t.Errorf("replica %s: %v", r.name, err)
		}
		n.ok += int(ok)
		n.failed += int(failed)
	}
	return n
}

// sample stops the load (g), waits for what figway does after a call
// (shadow copies, async operations' records) to settle, and reads each
// replica's usage. It does not wait for a node's restart to end (on a
// loaded machine one lasts up to a minute, most of a short run): a
// replica that is reconnecting holds a connection and its goroutines
// less, which the growth check's floors cover.
func sample(t *testing.T, g *gate, begin time.Time, usages map[string][]usage, rs ...*replica) {
	g.Lock()
	defer g.Unlock()
	time.Sleep(time.Second)
	at := time.Since(begin)
	for _, r := range rs {
		u, err := r.usage(at)
		if err != nil {
			t.Errorf("replica %s: usage at %v: %v", r.name, at.Round(time.Second), err)
			continue
		}
		usages[r.name] = append(usages[r.name], u)
	}
}

// drain waits up to 2 minutes for the workers to have consumed every
// confirmed event and returns how many were not, the duplicates, and
// how many distinct events were consumed.
func drain(tl *tally, seen *consumed) (lost, dups, consumedN int) {
	count := func() (lost, dups, n int) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		seen.mu.Lock()
		defer seen.mu.Unlock()
		for id := range tl.confirmed {
			if seen.events[id] == 0 {
				lost++
			}
		}
		for _, k := range seen.events {
			dups += k - 1
		}
		return lost, dups, len(seen.events)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if l, _, _ := count(); l == 0 || time.Now().After(deadline) {
			break
		}
	}
	return count()
}

// report logs the soak's table.
func report(t *testing.T, tl *tally, usages map[string][]usage, restarts []restart, fs []fault, reloads reloadCount, lost, dups, consumedN, shadows int) {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "\ncalls\toutcomes\n")
	for _, k := range kinds {
		fmt.Fprintf(w, "%s\t%s\n", k.kind, outcomes(tl.outcomes[k.kind]))
	}
	tl.mu.Lock()
	confirmed := len(tl.confirmed)
	tl.mu.Unlock()
	fmt.Fprintf(w, "\nevents\tconfirmed %d, consumed %d, lost %d, duplicated %d\n", confirmed, consumedN, lost, dups)
	fmt.Fprintf(w, "shadow copies consumed\t%d\n", shadows)
	fmt.Fprintf(w, "reloads\t%d written; %d ok, %d failed (both replicas)\n", reloads.written, reloads.ok, reloads.failed)
	for _, r := range restarts {
		fmt.Fprintf(w, "restart of %s\tat %v: stopped in %v, back with the queue's members online %v later\n", r.node,
			r.from.Sub(tl.begin).Round(time.Second), r.stopped.Round(time.Millisecond), r.ready.Round(time.Millisecond))
	}
	for _, f := range fs {
		if f.lost {
			fmt.Fprintf(w, "connection lost\t%s at %v (%s)\n", f.what, f.to.Sub(tl.begin).Round(time.Millisecond), f.err)
		}
	}
	for msg, n := range outsideFaults(tl, fs) {
		fmt.Fprintf(w, "failed outside a fault\t%d × %s\n", n, msg)
	}
	fmt.Fprintf(w, "\nreplica\tat\tRSS\tgoroutines\tdescriptors\n")
	for _, name := range []string{"a", "b"} {
		for _, u := range usages[name] {
			fmt.Fprintf(w, "%s\t%v\t%s\t%.0f\t%.0f\n", name, u.at.Round(time.Second), fmtBytes(u.rss), u.goroutines, u.files)
		}
	}
	fmt.Fprintf(w, "\nwindow\t%s p50 / p99\t%s p50 / p99\t%s p50 / p99\t%s p50 / p99\n", grpcRPC, restRPC, event, asyncOp)
	for i := range windows {
		fmt.Fprintf(w, "%v–%v", (tl.window * time.Duration(i)).Round(time.Second), (tl.window * time.Duration(i+1)).Round(time.Second))
		for _, k := range []kind{grpcRPC, restRPC, event, asyncOp} {
			l := tl.latencies[k][i]
			fmt.Fprintf(w, "\t%v / %v (%d)", percentile(l, 50).Round(10*time.Microsecond), percentile(l, 99).Round(10*time.Microsecond), len(l))
		}
		fmt.Fprintln(w)
	}
	w.Flush()
	t.Log(b.String())
}

func outcomes(m map[string]int) string {
	var parts []string
	for o, n := range m {
		parts = append(parts, fmt.Sprintf("%s %d", o, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// failureMargin is how long after a fault a call may still fail because
// of it: the calls in flight on a lost connection end at once, but a
// replica may still be dialing, or a new channel meet an election.
const failureMargin = 10 * time.Second

// A fault is a time when calls may fail: a node's restart (until its
// queue member is back online), or a replica's or a worker's connection
// lost for another reason — on a machine loaded enough to starve a node
// past the heartbeat, figway and the SDK declare the connection dead, as
// they must; a worker's loss takes its consumer away (calls fail "no
// consumer") and sends its requests back to the queue.
type fault struct {
	what     string
	from, to time.Time
	lost     bool // a connection lost outside any restart
	err      string
}

// faultWindows returns the restarts, and the connections the replicas
// ("connection to RabbitMQ lost" in their logs) and the workers lost
// outside them.
func faultWindows(restarts []restart, workerLogs []*proc.SyncBuffer, rs ...*replica) []fault {
	var fs []fault
	for _, r := range restarts {
		fs = append(fs, fault{what: "restart of " + r.node, from: r.from, to: r.to})
	}
	inRestart := func(at time.Time) bool {
		for _, rst := range restarts {
			if !at.Before(rst.from) && !at.After(rst.to) {
				return true
			}
		}
		return false
	}
	for i, l := range workerLogs {
		for _, at := range workerLosses(l.String()) {
			if !inRestart(at) { // the broker may drop the consumer before the worker notices
				fs = append(fs, fault{what: fmt.Sprintf("worker w%d", i+1), from: at.Add(-10 * time.Second), to: at, lost: true, err: "its connection failed"})
			}
		}
	}
	for _, r := range rs {
		for _, l := range r.LogLines("connection to RabbitMQ lost") {
			at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(l["time"]))
			if err != nil {
				continue
			}
			if !inRestart(at) { // from a moment before: a call fails as its channel closes, before the log line
				fs = append(fs, fault{what: "replica " + r.name, from: at.Add(-2 * time.Second), to: at, lost: true, err: fmt.Sprint(l["err"])})
			}
		}
	}
	return fs
}

// outsideFaults counts, by kind and message, the failed calls that
// overlap no fault. They are reported, not failed: on a machine loaded
// far past its cores, calls fail for reasons no log line marks — the
// operations stream read back too slowly, a consumer count that says 0 —
// and the soak's promises are losses, leaks and drift.
func outsideFaults(tl *tally, fs []fault) map[string]int {
	out := map[string]int{}
	for _, f := range tl.failures {
		during := false
		for _, r := range fs {
			if !f.end.Before(r.from) && f.start.Before(r.to.Add(failureMargin)) { // the call and the fault overlap
				during = true
			}
		}
		if !during {
			msg := status.Convert(f.err).Message()
			out[fmt.Sprintf("%s: %.80s", f.kind, msg)]++
		}
	}
	return out
}

// check fails t where the soak broke a promise.
func check(t *testing.T, tl *tally, usages map[string][]usage, restarts []restart, fs []fault, reloads reloadCount, lost int) {
	if lost != 0 {
		t.Errorf("%d confirmed events never consumed; want 0", lost)
	}
	for _, k := range kinds {
		if total(tl.outcomes[k.kind]) == 0 {
			t.Errorf("no %s call made", k.kind)
		}
	}
	if tl.outcomes[canaryRPC]["OK (broker)"] == 0 || tl.outcomes[canaryRPC]["OK (legacy)"] == 0 {
		t.Errorf("canary: %v; want calls answered by both sides", tl.outcomes[canaryRPC])
	}
	if len(restarts) == 0 {
		t.Error("no node restarted")
	}
	if reloads.written == 0 || reloads.failed != 0 {
		t.Errorf("reloads: %+v; want some, none failed", reloads)
	}
	for _, f := range tl.failures {
		if f.code != codes.Unavailable && f.code != codes.DeadlineExceeded {
			t.Errorf("%s failed %v after the start: %v; want only UNAVAILABLE or DEADLINE_EXCEEDED", f.kind, f.end.Sub(tl.begin).Round(time.Millisecond), f.err)
		}
	}
	for name, us := range usages {
		if len(us) < 3 {
			t.Errorf("replica %s: %d samples of its usage; want 3", name, len(us))
			continue
		}
		warm, end := us[0], us[len(us)-1]
		grew := func(what string, from, to, floor float64, show func(float64) string) {
			if to > from*(1+maxGrowth)+floor {
				t.Errorf("replica %s: %s grew from %s at %v to %s at %v; want at most 10%% (+%s)", name, what,
					show(from), warm.at.Round(time.Second), show(to), end.at.Round(time.Second), show(floor))
			}
		}
		count := func(f float64) string { return fmt.Sprintf("%.0f", f) }
		grew("RSS", warm.rss, end.rss, rssFloor, fmtBytes)
		grew("goroutines", warm.goroutines, end.goroutines, goroutinesFloor, count)
		grew("open descriptors", warm.files, end.files, filesFloor, count)
	}
	checkDrift(t, tl, fs)
}

// checkDrift fails t if the median gRPC call of the last quiet window —
// one no fault touched, past the warm-up — is much slower than the best
// quiet window's: 4 times, plus 25 ms for a machine others load too. A
// leak that slows every call (a map that grows, a list walked per call)
// shows there. A window a restart touched is left out: its median holds
// the calls that waited for a replica's reconnect. With fewer than two
// quiet windows (a short run on a loaded machine, whose restarts last a
// window each) there is nothing to compare, and it says so.
func checkDrift(t *testing.T, tl *tally, fs []fault) {
	var quiet []int
	for i := 1; i < windows; i++ {
		from, to := tl.begin.Add(tl.window*time.Duration(i)), tl.begin.Add(tl.window*time.Duration(i+1))
		touched := false
		for _, f := range fs {
			touched = touched || (f.from.Before(to) && f.to.Add(failureMargin).After(from))
		}
		if !touched && len(tl.latencies[grpcRPC][i]) > 0 {
			quiet = append(quiet, i)
		}
	}
	if len(quiet) < 2 {
		t.Logf("latency drift not judged: %d quiet windows (windows: %v calls)", len(quiet), lens(tl.latencies[grpcRPC]))
		return
	}
	best := time.Duration(-1)
	for _, i := range quiet {
		if p := percentile(tl.latencies[grpcRPC][i], 50); best < 0 || p < best {
			best = p
		}
	}
	lastW := quiet[len(quiet)-1]
	last := percentile(tl.latencies[grpcRPC][lastW], 50)
	t.Logf("latency drift: gRPC median %v in window %d, the last quiet one; %v in the best of %d quiet windows", last, lastW+1, best, len(quiet))
	if last > 4*best+25*time.Millisecond {
		t.Errorf("gRPC median of the last quiet window %v; of the best %v: want at most 4× + 25ms", last, best)
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func lens(ls [][]time.Duration) []int {
	var n []int
	for _, l := range ls {
		n = append(n, len(l))
	}
	return n
}
