package worker

import (
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// ackLog plays the broker's part for the acks' bookkeeping: it keeps the
// outstanding delivery tags and fails as RabbitMQ does on an ack of a tag
// that is not outstanding (which would close the channel).
type ackLog struct {
	t           *testing.T
	outstanding map[uint64]bool
	frames      int
}

func (l *ackLog) Ack(tag uint64, multiple bool) error {
	l.frames++
	if !l.outstanding[tag] {
		l.t.Fatalf("ack of tag %d (multiple %v), which is not outstanding", tag, multiple)
	}
	for t := range l.outstanding {
		if t == tag || multiple && t < tag {
			delete(l.outstanding, t)
		}
	}
	return nil
}

func (l *ackLog) Reject(tag uint64, _ bool) error {
	if !l.outstanding[tag] {
		l.t.Fatalf("reject of tag %d, which is not outstanding", tag)
	}
	delete(l.outstanding, tag)
	return nil
}

// noTimer stands in for the flush timer: the tests call flush themselves.
func noTimer(time.Duration) *time.Timer { return time.NewTimer(time.Hour) }

// TestAcksBookkeeping finishes deliveries in random orders, with rejects
// among them, and checks that an ack never settles a delivery still
// running, never names a tag already settled, and that every delivery is
// settled once the window has passed.
func TestAcksBookkeeping(t *testing.T) {
	for round := range 100 {
		n := 1 + rand.IntN(4*maxHeld) // past maxHeld too
		log := &ackLog{t: t, outstanding: map[uint64]bool{}}
		for tag := uint64(1); tag <= uint64(n); tag++ {
			log.outstanding[tag] = true
		}
		var sent atomic.Uint64
		a := newAcks(log, 5*time.Millisecond, &sent)
		defer a.stop()
		now := time.Now()
		order := rand.Perm(n)
		running := map[uint64]bool{}
		for _, i := range order {
			running[uint64(i+1)] = true
		}
		for k, i := range order {
			tag := uint64(i + 1)
			delete(running, tag)
			now = now.Add(time.Duration(rand.IntN(3)) * time.Millisecond)
			var err error
			if rand.IntN(10) == 0 {
				err = a.reject(tag)
			} else {
				err = a.finish(tag, now, k == n-1, noTimer)
			}
			if err != nil {
				t.Fatal(err)
			}
			if rand.IntN(5) == 0 {
				if err := a.flush(now, false, noTimer); err != nil {
					t.Fatal(err)
				}
			}
			for r := range running {
				if !log.outstanding[r] {
					t.Fatalf("round %d: tag %d settled while still running", round, r)
				}
			}
		}
		if err := a.flush(now.Add(time.Second), false, noTimer); err != nil {
			t.Fatal(err)
		}
		if len(log.outstanding) != 0 {
			left := slices.Sorted(func(yield func(uint64) bool) {
				for tag := range log.outstanding {
					if !yield(tag) {
						return
					}
				}
			})
			t.Fatalf("round %d: tags %v never settled", round, left)
		}
		if got := sent.Load(); got != uint64(log.frames) {
			t.Fatalf("round %d: Stats counted %d acks; %d sent", round, got, log.frames)
		}
	}
}

// TestAcksGathered: in delivery order, acks go out as one frame per run of
// maxGathered, not one per delivery.
func TestAcksGathered(t *testing.T) {
	const n = 10 * maxGathered
	log := &ackLog{t: t, outstanding: map[uint64]bool{}}
	for tag := uint64(1); tag <= n; tag++ {
		log.outstanding[tag] = true
	}
	var sent atomic.Uint64
	a := newAcks(log, time.Minute, &sent)
	defer a.stop()
	now := time.Now()
	for tag := uint64(1); tag <= n; tag++ {
		if err := a.finish(tag, now, false, noTimer); err != nil {
			t.Fatal(err)
		}
	}
	if log.frames != n/maxGathered || len(log.outstanding) != 0 {
		t.Errorf("%d deliveries in order: %d ack frames, %d left; want %d frames, none left", n, log.frames, len(log.outstanding), n/maxGathered)
	}
}

// TestAcksHeldBehindSlow: deliveries finished behind a running one are
// acked alone once the window ends, and the slow one's ack later settles
// only itself.
func TestAcksHeldBehindSlow(t *testing.T) {
	log := &ackLog{t: t, outstanding: map[uint64]bool{1: true, 2: true, 3: true}}
	var sent atomic.Uint64
	a := newAcks(log, 5*time.Millisecond, &sent)
	defer a.stop()
	now := time.Now()
	a.finish(2, now, false, noTimer)
	a.finish(3, now, false, noTimer)
	a.flush(now.Add(time.Millisecond), false, noTimer)
	if len(log.outstanding) != 3 {
		t.Fatalf("acks sent before the window ended: outstanding %v", log.outstanding)
	}
	a.flush(now.Add(5*time.Millisecond), false, noTimer)
	if !log.outstanding[1] || len(log.outstanding) != 1 {
		t.Fatalf("after the window: outstanding %v; want only 1, still running", log.outstanding)
	}
	a.finish(1, now.Add(time.Second), true, noTimer)
	if len(log.outstanding) != 0 {
		t.Fatalf("outstanding %v after the slow one finished", log.outstanding)
	}
}
