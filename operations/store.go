package operations

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/figway/figway/wire"
)

// Errors of the Store; callers branch on them with errors.Is.
var (
	// ErrNotFound: no such operation, or not the caller's (an owner
	// mismatch looks the same as an unknown id), or expired.
	ErrNotFound = errors.New("operation not found")
	// ErrFull: the index holds as many operations as it may and none of
	// them is done; no new operation is taken.
	ErrFull = errors.New("too many operations")
	// ErrNotReady: the Store has not yet read the log up to the time it
	// started, so an unknown id may just not be known yet.
	ErrNotReady = errors.New("operations not read from the log yet")
	// ErrLog: the log could not take a record (the broker is down).
	ErrLog = errors.New("operations log unavailable")
)

// Code maps the errors of the Store to the gRPC code a caller gets:
// NOT_FOUND for an unknown, expired or not owned operation, UNAVAILABLE
// when the index is full, not read yet, or the log is down.
func Code(err error) codes.Code {
	switch {
	case err == nil:
		return codes.OK
	case errors.Is(err, ErrNotFound):
		return codes.NotFound
	case errors.Is(err, ErrFull), errors.Is(err, ErrNotReady), errors.Is(err, ErrLog):
		return codes.Unavailable
	}
	return codes.Internal
}

// Log is the port through which operations are shared between figways.
// adapters/amqp implements it on a RabbitMQ stream.
type Log interface {
	// Append writes r to the log and returns once the log holds it. Every
	// Store reading the log gets r through [Store.Apply], the appending
	// one included.
	Append(ctx context.Context, r *Record) error
	// Sync returns once every record that any figway appended before the
	// call has been given to [Store.Apply]. A Store calls it for an id it
	// does not know: a figway may answer 202 with an operation and its
	// caller ask another before that one has read the started record.
	Sync(ctx context.Context) error
}

// Defaults of a Store's bounds, and the REST path its operations are
// served under (docs/configuration.md, server.operations_*).
const (
	DefaultMax      = 100_000
	DefaultMaxBytes = 256 << 20
	DefaultPath     = "/v1/operations"
)

// Config configures a Store.
type Config struct {
	// Log is where records are appended. It is required.
	Log Log
	// Max is the most operations held. If 0, DefaultMax (100000).
	Max int
	// MaxBytes bounds the memory operations hold, replies included. If 0,
	// DefaultMaxBytes (256 MiB).
	MaxBytes int64
	// Key keys the hash of owners' header values. Every figway sharing a
	// log needs the same.
	Key []byte
	// Grace is how long past its deadline a pending operation that this
	// figway did not publish waits for its done record before it is
	// concluded UNAVAILABLE. If 0, 2s.
	Grace  time.Duration
	Logger *slog.Logger // if nil, slog.Default()
}

// Store is the in-memory index of operations, fed by the log. Its methods
// are safe for concurrent use. Run expires operations and owns the calls
// started through [Store.Go].
type Store struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	ops     map[string]*entry
	bytes   int64
	pending int
	// done holds the ids of done operations, oldest first: the order of
	// eviction. Ids of operations gone since are skipped when met.
	done  []string
	tombs map[string]time.Time // deleted id → when to forget it

	caught     chan struct{} // closed once the log was read up to the start
	caughtOnce sync.Once

	// calls is cancelled when Run's context ends: it ends the calls of
	// operations still pending here.
	calls    context.Context
	stop     context.CancelFunc
	stopping atomic.Bool
	running  sync.WaitGroup

	expired, evicted, refused, concluded atomic.Uint64
	lag                                  atomic.Int64
}

type entry struct {
	op   Operation
	size int64
	// local: this figway published the call and will append its outcome.
	local bool
	// concluded: Done was set here, at the deadline, for want of a done
	// record; a done record that comes later replaces it.
	concluded bool
	doneCh    chan struct{} // closed when op.Done becomes true
}

// Operation is a snapshot of one operation.
type Operation struct {
	ID       string
	Method   string
	OwnerBy  string
	Owner    string
	Start    time.Time
	Deadline time.Time
	Keep     time.Duration
	Done     bool
	DoneAt   time.Time
	// Result is set once Done.
	Result *Result
}

// Stats is a snapshot of a Store's counts.
type Stats struct {
	Pending, Done int
	Bytes         int64
	// Expired counts done operations dropped once kept for their keep;
	// Evicted, those dropped early to make room; Refused, new operations
	// refused for want of room; Concluded, operations ended UNAVAILABLE
	// here at their deadline because no done record came.
	Expired, Evicted, Refused, Concluded uint64
	// Lag is the time between the appending of the last record read and
	// its reading.
	Lag time.Duration
	// CaughtUp says whether the log has been read up to the Store's start.
	CaughtUp bool
}

// New returns a Store. It starts nothing: Run does.
func New(cfg Config) *Store {
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 2 * time.Second
	}
	s := &Store{cfg: cfg, log: cfg.Logger, ops: map[string]*entry{}, tombs: map[string]time.Time{}, caught: make(chan struct{})}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.calls, s.stop = context.WithCancel(context.Background())
	return s
}

// Owner returns the keyed hash of the value of header name that owns an
// operation, or "" when name is "".
func (s *Store) Owner(name, value string) string {
	if name == "" {
		return ""
	}
	m := hmac.New(sha256.New, s.cfg.Key)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

// CaughtUp records that the log has been read up to the Store's start:
// from now on an unknown id is unknown.
func (s *Store) CaughtUp() { s.caughtOnce.Do(func() { close(s.caught) }) }

// waitCaughtUp waits for CaughtUp, at most until ctx ends or 5s.
func (s *Store) waitCaughtUp(ctx context.Context) error {
	select {
	case <-s.caught:
		return nil
	default:
	}
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-s.caught:
		return nil
	case <-ctx.Done():
	case <-t.C:
	}
	return ErrNotReady
}

// Run expires operations, and concludes those whose publisher is gone,
// until ctx is cancelled; then it cancels the calls started with Go and
// returns once they have ended.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.stopping.Store(true)
			s.stop()
			s.running.Wait()
			return nil
		case now := <-t.C:
			s.sweep(now)
		}
	}
}

// Go runs call on a goroutine the Store owns, with a context that keeps
// ctx's values but neither its cancellation nor its deadline: a call that
// became an operation outlives its request. The returned function cancels
// the call, as does Run's end.
func (s *Store) Go(ctx context.Context, call func(ctx context.Context)) context.CancelFunc {
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(s.calls, cancel)
	s.running.Go(func() {
		defer cancel()
		defer stop()
		call(c)
	})
	return cancel
}

// Start makes a new operation of method, appends its started record and
// returns it. owner is [Store.Owner]'s hash of ownerBy's value. It fails
// with ErrFull when the index has no room, and with ErrLog when the log
// cannot take the record.
func (s *Store) Start(ctx context.Context, method, ownerBy, owner string, start, deadline time.Time, keep time.Duration) (Operation, error) {
	r := &Record{Kind: Started, ID: wire.NewID(), Method: method, OwnerBy: ownerBy, Owner: owner,
		Start: start, Deadline: deadline, Keep: keep}
	s.mu.Lock()
	ok := s.makeRoom(r.size())
	s.mu.Unlock()
	if !ok {
		s.refused.Add(1)
		return Operation{}, fmt.Errorf("%w: %d held (operations_max %d), %d bytes (operations_max_bytes %d), none done",
			ErrFull, s.count(), s.cfg.Max, s.bytesHeld(), s.cfg.MaxBytes)
	}
	r.At = time.Now()
	if err := s.cfg.Log.Append(ctx, r); err != nil {
		return Operation{}, fmt.Errorf("%w: %w", ErrLog, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.apply(r, time.Now())
	if e == nil {
		return Operation{}, fmt.Errorf("%w: %s was deleted at once", ErrNotFound, r.ID)
	}
	e.local = true
	return e.op, nil
}

// Finish records the outcome of a call that this figway published: the
// operation is done here at once, and its done record is appended to the
// log (retried for a while if the log is down). The outcome of a deleted
// operation is dropped.
func (s *Store) Finish(op Operation, res *Result) {
	if s.stopping.Load() && res.Status != nil && codes.Code(res.Status.GetCode()) == codes.Canceled {
		res = &Result{Status: &spb.Status{Code: int32(codes.Unavailable), Message: "figway stopped before the reply came"}}
	}
	r := &Record{Kind: Done, ID: op.ID, Method: op.Method, OwnerBy: op.OwnerBy, Owner: op.Owner,
		Start: op.Start, Deadline: op.Deadline, Keep: op.Keep, Result: res, At: time.Now()}
	s.mu.Lock()
	_, deleted := s.tombs[op.ID]
	if !deleted {
		s.apply(r, r.At)
	}
	s.mu.Unlock()
	if deleted {
		return // its late reply is dropped
	}
	// The others learn the outcome from the log only. Retry while the log
	// reconnects, within a bound: past it they conclude UNAVAILABLE at
	// the deadline by themselves.
	bound := 30 * time.Second
	if s.stopping.Load() {
		bound = 2 * time.Second // do not hold up a shutdown for long
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.calls), bound)
	defer cancel()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := s.cfg.Log.Append(ctx, r)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			s.log.Warn("cannot append an operation's outcome to the log; other figways will end it UNAVAILABLE at its deadline",
				"operation", op.ID, "method", op.Method, "err", err)
			return
		case <-time.After(wait):
		}
	}
}

// Apply takes in a record read from the log. Records are idempotent: one
// read twice, or after the record it follows, changes nothing.
func (s *Store) Apply(r *Record) {
	now := time.Now()
	if !r.At.IsZero() {
		s.lag.Store(int64(max(0, now.Sub(r.At))))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apply(r, now)
}

// apply applies r under s.mu and returns the operation's entry, or nil when
// it is gone (deleted, expired).
func (s *Store) apply(r *Record, now time.Time) *entry {
	if _, gone := s.tombs[r.ID]; gone {
		return nil
	}
	e := s.ops[r.ID]
	switch r.Kind {
	case Deleted:
		if e != nil {
			s.remove(e)
		}
		s.tombs[r.ID] = later(r.Deadline, r.At).Add(r.Keep + s.cfg.Grace)
		return nil
	case Started:
		if e != nil {
			return e
		}
		if now.After(r.Deadline.Add(r.Keep + s.cfg.Grace)) {
			return nil // expired long ago
		}
		e = s.insert(r)
		return e
	case Done:
		if r.Result == nil {
			return e
		}
		if now.After(r.At.Add(r.Keep)) {
			return e // kept for its keep already
		}
		if e == nil {
			e = s.insert(r)
		} else if e.op.Done && !e.concluded {
			return e // read twice
		}
		s.finish(e, r, r.At)
		s.makeRoom(0)
		return e
	}
	return e
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// insert adds a pending operation of r's description, making room if it
// can. A record from the log is taken in even past the bounds: another
// figway took the operation already.
func (s *Store) insert(r *Record) *entry {
	e := &entry{
		op: Operation{ID: r.ID, Method: r.Method, OwnerBy: r.OwnerBy, Owner: r.Owner,
			Start: r.Start, Deadline: r.Deadline, Keep: r.Keep},
		size:   r.size(),
		doneCh: make(chan struct{}),
	}
	s.makeRoom(e.size)
	s.ops[r.ID] = e
	s.bytes += e.size
	s.pending++
	return e
}

// finish sets e done with r's result.
func (s *Store) finish(e *entry, r *Record, at time.Time) {
	if !e.op.Done {
		s.pending--
		s.done = append(s.done, e.op.ID)
	}
	s.bytes -= e.size
	e.size = r.size()
	s.bytes += e.size
	e.op.Done, e.op.DoneAt, e.op.Result = true, at, r.Result
	e.concluded = false
	select {
	case <-e.doneCh:
	default:
		close(e.doneCh)
	}
}

func (s *Store) remove(e *entry) {
	delete(s.ops, e.op.ID)
	s.bytes -= e.size
	if !e.op.Done {
		s.pending--
	}
}

// makeRoom evicts done operations, oldest first, until one more operation
// of size bytes fits; it reports whether it does.
func (s *Store) makeRoom(size int64) bool {
	fits := func() bool { return len(s.ops)+1 <= s.cfg.Max && s.bytes+size <= s.cfg.MaxBytes }
	if size == 0 {
		fits = func() bool { return len(s.ops) <= s.cfg.Max && s.bytes <= s.cfg.MaxBytes }
	}
	for !fits() && len(s.done) > 0 {
		id := s.done[0]
		s.done[0] = ""
		s.done = s.done[1:]
		if e := s.ops[id]; e != nil && e.op.Done {
			s.remove(e)
			s.evicted.Add(1)
		}
	}
	if len(s.done) == 0 {
		s.done = nil // let the array go
	}
	return fits()
}

// sweep expires done operations kept for their keep, forgets old
// tombstones, and concludes operations whose publisher is gone.
func (s *Store) sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, e := range s.ops {
		switch {
		case e.op.Done && now.After(e.op.DoneAt.Add(e.op.Keep)):
			s.remove(e)
			s.expired.Add(1)
		case !e.op.Done && !e.local && now.After(e.op.Deadline.Add(s.cfg.Grace)):
			s.finish(e, &Record{ID: id, Method: e.op.Method, OwnerBy: e.op.OwnerBy, Owner: e.op.Owner, Result: &Result{
				Status: &spb.Status{Code: int32(codes.Unavailable), Message: "the figway that published the call stopped before its reply came"},
			}}, e.op.Deadline)
			e.concluded = true
			s.concluded.Add(1)
		}
	}
	for id, until := range s.tombs {
		if now.After(until) {
			delete(s.tombs, id)
		}
	}
	// The done queue keeps ids of operations expired since; compact it
	// when they make most of it.
	if len(s.done) > 1024 && len(s.done) > 2*(len(s.ops)-s.pending) {
		kept := make([]string, 0, len(s.ops)-s.pending)
		for _, id := range s.done {
			if e := s.ops[id]; e != nil && e.op.Done {
				kept = append(kept, id)
			}
		}
		s.done = kept
	}
}

// syncWait bounds a lookup's wait for the log to be read up to now.
const syncWait = 2 * time.Second

// lookup returns the entry of id if header's value owns it. An id it does
// not know it looks up again once the log has been read up to now.
func (s *Store) lookup(ctx context.Context, id string, header func(string) string) (*entry, error) {
	s.mu.Lock()
	e := s.ops[id]
	s.mu.Unlock()
	if e == nil && len(id) == 32 {
		sctx, cancel := context.WithTimeout(ctx, syncWait)
		err := s.cfg.Log.Sync(sctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrLog, err)
		}
		s.mu.Lock()
		e = s.ops[id]
		s.mu.Unlock()
	}
	if e == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if e.op.Owner != "" {
		v := ""
		if header != nil {
			v = header(e.op.OwnerBy)
		}
		if !hmac.Equal([]byte(s.Owner(e.op.OwnerBy, v)), []byte(e.op.Owner)) {
			return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
		}
	}
	return e, nil
}

// Get returns operation id, if header (a request's header values by
// lower-case name) has the value that owns it.
func (s *Store) Get(ctx context.Context, id string, header func(string) string) (Operation, error) {
	if err := s.waitCaughtUp(ctx); err != nil {
		return Operation{}, err
	}
	e, err := s.lookup(ctx, id, header)
	if err != nil {
		return Operation{}, err
	}
	return s.snapshot(e), nil
}

// Wait is Get that waits until the operation is done or ctx ends,
// whichever comes first; in the latter case it returns the operation still
// pending, without error.
func (s *Store) Wait(ctx context.Context, id string, header func(string) string) (Operation, error) {
	if err := s.waitCaughtUp(ctx); err != nil && ctx.Err() == nil {
		return Operation{}, err
	}
	e, err := s.lookup(ctx, id, header)
	if err != nil {
		return Operation{}, err
	}
	select {
	case <-e.doneCh:
	case <-ctx.Done():
	}
	return s.snapshot(e), nil
}

func (s *Store) snapshot(e *entry) Operation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return e.op
}

// Delete forgets operation id, if header's value owns it, and appends its
// deleted record: every figway forgets it, and its reply, when it comes,
// is dropped.
func (s *Store) Delete(ctx context.Context, id string, header func(string) string) error {
	if err := s.waitCaughtUp(ctx); err != nil {
		return err
	}
	e, err := s.lookup(ctx, id, header)
	if err != nil {
		return err
	}
	op := s.snapshot(e)
	r := &Record{Kind: Deleted, ID: id, Method: op.Method, OwnerBy: op.OwnerBy, Owner: op.Owner,
		Start: op.Start, Deadline: op.Deadline, Keep: op.Keep, At: time.Now()}
	if err := s.cfg.Log.Append(ctx, r); err != nil {
		return fmt.Errorf("%w: %w", ErrLog, err)
	}
	s.mu.Lock()
	s.apply(r, r.At)
	s.mu.Unlock()
	return nil
}

// List returns the operations of method ("" for all) that header's values
// may read — those without an owner and those it owns — oldest first,
// starting after the operation id after ("" from the first), at most
// limit of them. more reports whether others follow.
func (s *Store) List(method string, header func(string) string, after string, limit int) (ops []Operation, more bool) {
	s.mu.Lock()
	all := make([]Operation, 0, len(s.ops))
	for _, e := range s.ops {
		if method == "" || e.op.Method == method {
			all = append(all, e.op)
		}
	}
	s.mu.Unlock()
	sortOperations(all)
	owns := map[string]string{} // header → its hash, computed once
	for _, op := range all {
		if after != "" {
			if op.ID == after {
				after = ""
			}
			continue
		}
		if op.Owner != "" {
			h, ok := owns[op.OwnerBy]
			if !ok {
				v := ""
				if header != nil {
					v = header(op.OwnerBy)
				}
				h = s.Owner(op.OwnerBy, v)
				owns[op.OwnerBy] = h
			}
			if !hmac.Equal([]byte(h), []byte(op.Owner)) {
				continue
			}
		}
		if len(ops) == limit {
			return ops, true
		}
		ops = append(ops, op)
	}
	return ops, false
}

// Stats returns the Store's counts.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := Stats{Pending: s.pending, Done: len(s.ops) - s.pending, Bytes: s.bytes}
	s.mu.Unlock()
	st.Expired, st.Evicted, st.Refused, st.Concluded = s.expired.Load(), s.evicted.Load(), s.refused.Load(), s.concluded.Load()
	st.Lag = time.Duration(s.lag.Load())
	select {
	case <-s.caught:
		st.CaughtUp = true
	default:
	}
	return st
}

func (s *Store) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ops)
}

func (s *Store) bytesHeld() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}
