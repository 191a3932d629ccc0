package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Bounds on reading a key set. A set over them is refused whole, and the
// keys read before stay.
const (
	// MaxSetBytes bounds a key set document.
	MaxSetBytes = 1 << 20
	// MaxSetKeys bounds the keys of a set (identity providers publish a
	// handful).
	MaxSetKeys = 1000
)

// Timing of the key sets; see [KeySet].
type Timing struct {
	// Fetch bounds one fetch of a URL, connection to last byte. If 0, 5s.
	Fetch time.Duration
	// Wait bounds how long a call waits for a fetch it needs (no keys yet,
	// or an unknown kid). If 0, 1s.
	Wait time.Duration
	// UnknownKID is the least time between two reads asked for by unknown
	// kids. If 0, 10s.
	UnknownKID time.Duration
	// Retry is how soon a failed read is tried again, if sooner than the
	// set's refresh. If 0, 10s.
	Retry time.Duration
}

func (t Timing) orDefaults() Timing {
	if t.Fetch <= 0 {
		t.Fetch = 5 * time.Second
	}
	if t.Wait <= 0 {
		t.Wait = time.Second
	}
	if t.UnknownKID <= 0 {
		t.UnknownKID = 10 * time.Second
	}
	if t.Retry <= 0 {
		t.Retry = 10 * time.Second
	}
	return t
}

// KeySet is the keys of one source, read again every refresh, and at
// once (at most every Timing.UnknownKID) when a token names a kid it does
// not hold. A read that fails — unreachable, hanging past Timing.Fetch, not
// 200, not a key set, over MaxSetBytes or MaxSetKeys — keeps the keys read
// before, is logged and counted, and is tried again within Timing.Retry.
type KeySet struct {
	src     JWKS
	name    string // the source as logged and labelled: a URL without credentials or query
	timing  Timing
	client  *http.Client
	log     *slog.Logger
	refresh time.Duration
	// reads are the reads an unknown kid started, which Keys.Run waits
	// for as it ends.
	reads *sync.WaitGroup

	mu       sync.Mutex
	cur      *snapshot     // nil until the first good read
	reading  chan struct{} // closed when the read in progress ends; nil when none
	last     time.Time     // of the last read started
	unknown  time.Time     // of the last read an unknown kid started
	failing  bool
	lastErr  string
	ok, fail uint64
	good     time.Time // of the last good read
}

// snapshot is one good read of a set.
type snapshot struct {
	kf   keyfunc.Keyfunc
	kids map[string]bool
	n    int
}

func newKeySet(src JWKS, timing Timing, log *slog.Logger, reads *sync.WaitGroup) *KeySet {
	refresh := src.Refresh
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	t := timing.orDefaults()
	return &KeySet{src: src, name: sourceName(src), timing: t, log: log, refresh: refresh, reads: reads,
		client: &http.Client{Timeout: t.Fetch}}
}

// sourceName is src as logs and metrics show it.
func sourceName(src JWKS) string {
	if src.File != "" {
		return src.File
	}
	u, err := url.Parse(src.URL)
	if err != nil {
		return "invalid URL"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// keyfunc returns the key function for a token with kid, reading the set
// first when it holds no keys or not kid.
func (s *KeySet) keyfunc(ctx context.Context, kid string) (jwt.Keyfunc, error) {
	snap := s.snapshot()
	if snap == nil || (kid != "" && !snap.kids[kid]) {
		s.awaitRead(ctx)
		snap = s.snapshot()
	}
	switch {
	case snap == nil:
		return nil, refuse(ReasonNoKeys, "no keys: the key set could not be read")
	case kid == "" && snap.n != 1:
		return nil, refuse(ReasonUnknownKey, "token without kid, and the key set holds %d keys", snap.n)
	case kid != "" && !snap.kids[kid]:
		return nil, refuse(ReasonUnknownKey, "unknown key id %q", clip(kid))
	}
	return snap.kf.KeyfuncCtx(ctx), nil
}

func (s *KeySet) snapshot() *snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// awaitRead starts a read if none is running and the last one an unknown
// kid asked for is old enough, then waits for the running read, at most
// Timing.Wait and never past ctx.
func (s *KeySet) awaitRead(ctx context.Context) {
	s.mu.Lock()
	done := s.reading
	if done == nil && time.Since(s.unknown) >= s.timing.UnknownKID {
		s.unknown = time.Now()
		done = s.startLocked()
		s.reads.Go(func() { s.read(done) }) // ends within Timing.Fetch
	}
	s.mu.Unlock()
	if done == nil {
		return
	}
	t := time.NewTimer(s.timing.Wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// startLocked marks a read as started and returns its done channel; s.mu
// is held.
func (s *KeySet) startLocked() chan struct{} {
	s.reading = make(chan struct{})
	s.last = time.Now()
	return s.reading
}

// due reports whether the set should be read now: its refresh has passed,
// or its last read failed and Timing.Retry has.
func (s *KeySet) due(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reading != nil {
		return false
	}
	wait := s.refresh
	if s.cur == nil || s.failing {
		wait = min(wait, s.timing.Retry)
	}
	return s.last.IsZero() || now.Sub(s.last) >= wait
}

// readNow starts a read if none is running and waits for it.
func (s *KeySet) readNow() {
	s.mu.Lock()
	done := s.reading
	if done == nil {
		done = s.startLocked()
		s.mu.Unlock()
		s.read(done)
		return
	}
	s.mu.Unlock()
	<-done
}

// read reads the set once, keeps it if good, and closes done.
func (s *KeySet) read(done chan struct{}) {
	snap, err := s.fetch()
	s.mu.Lock()
	defer s.mu.Unlock()
	defer close(done)
	s.reading = nil
	if err != nil {
		s.fail++
		if !s.failing || s.lastErr != err.Error() {
			s.log.Warn("JWKS read failed; keeping the keys read before", "jwks", s.name, "err", err.Error(),
				"keys", s.keysLocked(), "last_good", s.good)
		}
		s.failing, s.lastErr = true, err.Error()
		return
	}
	s.ok++
	if s.failing || s.cur == nil {
		s.log.Info("JWKS read", "jwks", s.name, "keys", snap.n)
	}
	s.failing, s.lastErr, s.cur, s.good = false, "", snap, time.Now()
}

func (s *KeySet) keysLocked() int {
	if s.cur == nil {
		return 0
	}
	return s.cur.n
}

// fetch reads the source and parses it.
func (s *KeySet) fetch() (*snapshot, error) {
	raw, err := s.body()
	if err != nil {
		return nil, err
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %v", err)
	}
	if len(set.Keys) > MaxSetKeys {
		return nil, fmt.Errorf("%d keys, over the limit of %d", len(set.Keys), MaxSetKeys)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("no keys")
	}
	store, err := set.ToStorage()
	if err != nil {
		return nil, fmt.Errorf("key set: %v", err)
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: store, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		return nil, err
	}
	snap := &snapshot{kf: kf, kids: make(map[string]bool, len(set.Keys)), n: len(set.Keys)}
	for _, k := range set.Keys {
		snap.kids[k.KID] = true
	}
	return snap, nil
}

// body reads the source, at most MaxSetBytes.
func (s *KeySet) body() ([]byte, error) {
	var r io.Reader
	if s.src.File != "" {
		f, err := os.Open(s.src.File)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), s.timing.Fetch)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.src.URL, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json, application/jwk-set+json")
		resp, err := s.client.Do(req)
		if err != nil {
			return nil, urlless(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		r = resp.Body
	}
	raw, err := io.ReadAll(io.LimitReader(r, MaxSetBytes+1))
	if err != nil {
		return nil, urlless(err)
	}
	if len(raw) > MaxSetBytes {
		return nil, fmt.Errorf("over the limit of %d bytes", MaxSetBytes)
	}
	return raw, nil
}

// urlless drops the URL from an HTTP client's error: the log names the
// source without its query, which may hold a secret.
func urlless(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// State is a key set's state, for metrics and the status page.
type State struct {
	Source string // URL without credentials or query, or the file
	Up     bool   // the last read succeeded
	Keys   int    // held now (from the last good read)
	// Reads counts the reads that succeeded and failed.
	ReadsOK, ReadsFailed uint64
	LastGood             time.Time // zero if never
}

// State returns the set's state now.
func (s *KeySet) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return State{Source: s.name, Up: s.cur != nil && !s.failing, Keys: s.keysLocked(),
		ReadsOK: s.ok, ReadsFailed: s.fail, LastGood: s.good}
}
