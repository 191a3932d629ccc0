package operations

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
)

// memLog is the Log port in memory: what is appended is applied to every
// Store subscribed, in order, as a stream does. The adapter on a real
// RabbitMQ stream is tested in cmd/figway.
type memLog struct {
	mu     sync.Mutex
	stores []*Store
	fail   error
}

func (l *memLog) Append(_ context.Context, r *Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	for _, s := range l.stores {
		c := *r
		s.Apply(&c)
	}
	return nil
}

func (l *memLog) Sync(context.Context) error { return nil }

func newStores(n int, cfg Config) ([]*Store, *memLog) {
	l := &memLog{}
	cfg.Log = l
	for range n {
		s := New(cfg)
		s.CaughtUp()
		l.stores = append(l.stores, s)
	}
	return l.stores, l
}

func owner(v string) func(string) string {
	return func(string) string { return v }
}

func TestOwnerAndDelete(t *testing.T) {
	stores, _ := newStores(2, Config{Key: []byte("0123456789abcdef")})
	a, b := stores[0], stores[1]
	ctx := context.Background()
	now := time.Now()
	op, err := a.Start(ctx, "m/M", "x-tenant", a.Owner("x-tenant", "t1"), now, now.Add(time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, op.ID, owner("t1")); err != nil {
		t.Errorf("Get by owner on b = %v", err)
	}
	for _, v := range []string{"t2", ""} {
		if _, err := b.Get(ctx, op.ID, owner(v)); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get by %q = %v; want ErrNotFound", v, err)
		}
	}
	if err := b.Delete(ctx, op.ID, owner("t2")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete by another owner = %v; want ErrNotFound", err)
	}
	if err := b.Delete(ctx, op.ID, owner("t1")); err != nil {
		t.Fatal(err)
	}
	a.Finish(op, &Result{Body: []byte("late")}) // dropped
	for i, s := range stores {
		if _, err := s.Get(ctx, op.ID, owner("t1")); !errors.Is(err, ErrNotFound) {
			t.Errorf("store %d: Get after delete = %v; want ErrNotFound", i, err)
		}
	}
}

func TestBoundsEvictDoneFirstAndRefuse(t *testing.T) {
	stores, _ := newStores(1, Config{Max: 3})
	s := stores[0]
	ctx := context.Background()
	now := time.Now()
	start := func() (Operation, error) {
		return s.Start(ctx, "m/M", "", "", now, now.Add(time.Minute), time.Hour)
	}
	var ops []Operation
	for range 3 {
		op, err := start()
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op)
	}
	if _, err := start(); !errors.Is(err, ErrFull) || Code(err) != codes.Unavailable {
		t.Fatalf("4th Start with 3 pending = %v; want ErrFull", err)
	}
	s.Finish(ops[1], &Result{Body: []byte("b")})
	s.Finish(ops[0], &Result{Body: []byte("a")})
	if _, err := start(); err != nil {
		t.Fatalf("Start with a done one to evict = %v", err)
	}
	// The first done (ops[1]) went, not the older start.
	if _, err := s.Get(ctx, ops[1].ID, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("oldest done operation still there: %v", err)
	}
	if _, err := s.Get(ctx, ops[0].ID, nil); err != nil {
		t.Errorf("newer done operation gone: %v", err)
	}
	st := s.Stats()
	if st.Evicted != 1 || st.Refused != 1 || st.Pending != 2 || st.Done != 1 {
		t.Errorf("Stats = %+v; want 1 evicted, 1 refused, 2 pending, 1 done", st)
	}
}

func TestBytesBound(t *testing.T) {
	stores, _ := newStores(1, Config{MaxBytes: 4 * entryOverhead})
	s := stores[0]
	ctx := context.Background()
	now := time.Now()
	op, err := s.Start(ctx, "m/M", "", "", now, now.Add(time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s.Finish(op, &Result{Body: make([]byte, 2*entryOverhead)})
	if _, err := s.Start(ctx, "m/M", "", "", now, now.Add(time.Minute), time.Hour); err != nil {
		t.Fatalf("Start = %v; want the big done one evicted", err)
	}
	if st := s.Stats(); st.Evicted != 1 || st.Bytes > 4*entryOverhead {
		t.Errorf("Stats = %+v; want 1 evicted, at most %d bytes", st, 4*entryOverhead)
	}
}

// TestDeadlineAndKeep: a figway that did not publish an operation ends it
// UNAVAILABLE at its deadline plus the grace, unless its done record comes;
// a done operation goes once kept for its keep; a done record that comes
// after the conclusion wins.
func TestDeadlineAndKeep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stores, _ := newStores(2, Config{Grace: time.Second})
		a, b := stores[0], stores[1]
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		for _, s := range stores {
			wg.Go(func() { s.Run(ctx) })
		}
		now := time.Now()
		op, err := a.Start(ctx, "m/M", "", "", now, now.Add(10*time.Second), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10*time.Second + 500*time.Millisecond)
		if got, _ := b.Get(ctx, op.ID, nil); got.Done {
			t.Fatalf("b concluded within the grace: %+v", got)
		}
		got, _ := b.Wait(ctx, op.ID, nil)
		if !got.Done || codes.Code(got.Result.Status.GetCode()) != codes.Unavailable || !time.Now().Before(now.Add(12*time.Second)) {
			t.Fatalf("b at the deadline: %+v at %v; want UNAVAILABLE at 11s", got, time.Since(now))
		}
		if got, _ := a.Get(ctx, op.ID, nil); got.Done {
			t.Errorf("a, which published the call, concluded it: %+v", got)
		}
		a.Finish(op, &Result{Body: []byte("late but recorded")})
		if got, _ := b.Get(ctx, op.ID, nil); got.Result.Status != nil || string(got.Result.Body) != "late but recorded" {
			t.Errorf("b after the done record = %+v; want its reply", got)
		}
		time.Sleep(31 * time.Second)
		for i, s := range stores {
			if _, err := s.Get(ctx, op.ID, nil); !errors.Is(err, ErrNotFound) {
				t.Errorf("store %d: Get after keep = %v; want ErrNotFound", i, err)
			}
			if st := s.Stats(); st.Expired != 1 {
				t.Errorf("store %d: Stats = %+v; want 1 expired", i, st)
			}
		}
		cancel()
		wg.Wait()
	})
}

// TestReplay: a Store reading the records of operations done long ago
// skips those past their keep, and one that reads a done record without
// its started one knows the operation all the same.
func TestReplay(t *testing.T) {
	s := New(Config{Log: &memLog{}})
	now := time.Now()
	old := &Record{Kind: Done, ID: "00000000000000000000000000000001", Method: "m/M", Start: now.Add(-time.Hour),
		Deadline: now.Add(-50 * time.Minute), Keep: 15 * time.Minute, At: now.Add(-55 * time.Minute), Result: &Result{}}
	recent := &Record{Kind: Done, ID: "00000000000000000000000000000002", Method: "m/M", Start: now.Add(-time.Minute),
		Deadline: now.Add(time.Minute), Keep: 15 * time.Minute, At: now.Add(-time.Second), Result: &Result{Body: []byte("x")}}
	s.Apply(old)
	s.Apply(recent)
	s.Apply(recent) // read twice
	s.CaughtUp()
	ctx := context.Background()
	if _, err := s.Get(ctx, old.ID, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("operation past its keep = %v; want ErrNotFound", err)
	}
	if got, err := s.Get(ctx, recent.ID, nil); err != nil || !got.Done || string(got.Result.Body) != "x" {
		t.Errorf("recent done operation = %+v, %v", got, err)
	}
	if st := s.Stats(); st.Done != 1 || st.Pending != 0 {
		t.Errorf("Stats = %+v; want 1 done", st)
	}
}

func TestStartFailsWhenLogDown(t *testing.T) {
	stores, l := newStores(1, Config{})
	l.fail = errors.New("down")
	now := time.Now()
	if _, err := stores[0].Start(context.Background(), "m/M", "", "", now, now.Add(time.Minute), time.Minute); !errors.Is(err, ErrLog) {
		t.Errorf("Start with the log down = %v; want ErrLog", err)
	}
}
