package auth

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Keys holds the key sets of a figway's routes, one per source, across
// reloads: a reload that keeps a source keeps its keys. The zero value is
// not usable; a nil *Keys hands out verifiers that refuse every token.
type Keys struct {
	timing Timing
	log    *slog.Logger

	mu   sync.Mutex
	sets map[JWKS]*KeySet
	// wake tells Run that a set was added.
	wake chan struct{}
	// reads are those the sets start themselves (unknown kids).
	reads sync.WaitGroup
}

// NewKeys returns an empty Keys. It starts nothing: Run reads the sets.
func NewKeys(timing Timing, log *slog.Logger) *Keys {
	if log == nil {
		log = slog.Default()
	}
	return &Keys{timing: timing.orDefaults(), log: log, sets: map[JWKS]*KeySet{}, wake: make(chan struct{}, 1)}
}

// Verifier returns the verifier of j, over the key set of j.JWKS (made
// now if no route named that source before).
func (k *Keys) Verifier(j JWT) *Verifier {
	if k == nil {
		return NewVerifier(j, nil)
	}
	return NewVerifier(j, k.set(j.JWKS))
}

func (k *Keys) set(src JWKS) *KeySet {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.sets[src]
	if s == nil {
		s = newKeySet(src, k.timing, k.log, &k.reads)
		k.sets[src] = s
		select {
		case k.wake <- struct{}{}:
		default:
		}
	}
	return s
}

// Retain forgets the sets whose source is not in keep (those of routes a
// reload removed): they are read no more.
func (k *Keys) Retain(keep []JWKS) {
	want := make(map[JWKS]bool, len(keep))
	for _, s := range keep {
		want[s] = true
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for src := range k.sets {
		if !want[src] {
			delete(k.sets, src)
		}
	}
}

// Run reads each set when it is due, until ctx is done, and returns once
// every read it started has ended (each within Timing.Fetch).
func (k *Keys) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer k.reads.Wait()
	defer wg.Wait()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		now := time.Now()
		for _, s := range k.all() {
			if s.due(now) {
				wg.Go(s.readNow)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-k.wake:
		}
	}
}

func (k *Keys) all() []*KeySet {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]*KeySet, 0, len(k.sets))
	for _, s := range k.sets {
		out = append(out, s)
	}
	return out
}

// States returns the state of every set.
func (k *Keys) States() []State {
	sets := k.all()
	out := make([]State, len(sets))
	for i, s := range sets {
		out[i] = s.State()
	}
	return out
}
