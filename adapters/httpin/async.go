package httpin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/operations"
)

// asyncCall is a call of an async route, running on a goroutine of the
// operations Store. Whoever comes second — the reply, or the request
// handler making it an operation — hands the outcome on: the handler
// answers a call done before it became an operation, the call finishes an
// operation it became.
type asyncCall struct {
	mu       sync.Mutex
	res      *gateway.Result
	err      error
	finished bool
	op       *operations.Operation // set once it became an operation
	done     chan struct{}         // closed when finished
}

// invokeAsync runs c, a call of an async route, and waits for it until the
// route's async.after (not at all with Prefer: respond-async). A call
// answered within it returns its outcome, as InvokeRoute would have;
// otherwise the call becomes an operation and invokeAsync answers 202
// Accepted with it, returning answered.
func (s *Server) invokeAsync(w http.ResponseWriter, r *http.Request, rt *router, b *binding, a *gateway.Async, c *gateway.Call) (res *gateway.Result, answered bool, err error) {
	ops := s.opts.Operations
	start := time.Now()
	c.Async = true
	ac := &asyncCall{done: make(chan struct{})}
	cancel := ops.Go(r.Context(), func(ctx context.Context) { s.runAsync(ctx, r, b, c, ac) })
	respondAsync := prefersAsync(r.Header)
	switch waitSync(r.Context(), ac.done, a.After, respondAsync) {
	case syncFinished:
		return ac.res, false, ac.err
	case syncLeft:
		// The caller left before the call became an operation: as with any
		// call, it is cancelled.
		cancel()
		<-ac.done
		return ac.res, false, ac.err
	}

	owner := ops.Owner(a.OwnerBy, r.Header.Get(a.OwnerBy))
	op, err := ops.Start(r.Context(), b.method, a.OwnerBy, owner, start, start.Add(a.Timeout), a.Keep)
	if err != nil {
		cancel() // its reply would have nowhere to go
		w.Header().Set("Retry-After", "1")
		return nil, false, fmt.Errorf("%s: cannot keep the call as an operation: %w", b.method, opError(err))
	}
	ac.mu.Lock()
	ac.op = &op
	finished := ac.finished
	ac.mu.Unlock()
	if finished {
		// The reply came while the operation was being recorded.
		ops.Finish(op, outcome(ac.res, ac.err))
		op.Done = true
	}
	if err := s.accepted(w, rt, op, a, respondAsync); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}

// How waitSync's wait for a call of an async route ended.
const (
	syncAccepted = iota // the call becomes an operation: 202
	syncFinished        // answered in time: the caller gets its outcome
	syncLeft            // the caller left first
)

// waitSync waits for done, closed when the call has finished, for at most
// after. With Prefer: respond-async it does not wait at all: that caller
// gets its 202 however soon the call finishes — waiting with a timer of
// 0 let a call that had finished by the time the timer was read win half
// the time, and answer 200 (a clean-clone run, on a loaded machine).
func waitSync(ctx context.Context, done <-chan struct{}, after time.Duration, respondAsync bool) int {
	if respondAsync {
		return syncAccepted
	}
	t := time.NewTimer(after)
	defer t.Stop()
	select {
	case <-done:
		return syncFinished
	case <-ctx.Done():
		return syncLeft
	case <-t.C:
		return syncAccepted
	}
}

// runAsync runs c, an async call on b's route, and finishes its operation
// if it became one by then. An operation is a trace of its own, linked to
// the request's.
func (s *Server) runAsync(ctx context.Context, r *http.Request, b *binding, c *gateway.Call, ac *asyncCall) {
	if s.opts.Tracer != nil {
		var span trace.Span
		ctx, span = s.opts.Tracer.Start(ctx, "operation "+b.method, trace.WithNewRoot(),
			trace.WithLinks(trace.LinkFromContext(r.Context())))
		defer span.End()
	}
	res, err := s.gw.InvokeRoute(ctx, b.route, c)
	ac.mu.Lock()
	ac.res, ac.err, ac.finished = res, err, true
	op := ac.op
	close(ac.done)
	ac.mu.Unlock()
	if op != nil {
		s.opts.Operations.Finish(*op, outcome(res, err))
	}
}

// accepted answers 202 Accepted with operation op, the call of an async
// route that outlived its async.after (or was asked to with Prefer:
// respond-async).
func (s *Server) accepted(w http.ResponseWriter, rt *router, op operations.Operation, a *gateway.Async, respondAsync bool) error {
	if respondAsync {
		w.Header().Set("Preference-Applied", "respond-async")
	}
	w.Header().Set("Location", s.operationsPath()+"/"+op.ID)
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter(a.After)))
	body, err := s.operationJSON(rt, op)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	w.Write(body)
	return nil
}

// retryAfter is the Retry-After of a 202, in whole seconds: the route's
// after, between 1 and 10.
func retryAfter(after time.Duration) int {
	return int(min(max((after+time.Second-1)/time.Second, 1), 10))
}

// prefersAsync reports whether the request asks for an asynchronous answer
// (RFC 7240 Prefer: respond-async).
func prefersAsync(h http.Header) bool {
	for _, v := range h.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(p, ";")
			if strings.EqualFold(strings.TrimSpace(name), "respond-async") {
				return true
			}
		}
	}
	return false
}

// outcome is what an operation keeps of a call's result: the reply as the
// route encodes it, or the status a synchronous caller would have got.
func outcome(res *gateway.Result, err error) *operations.Result {
	if err != nil {
		out := &operations.Result{Status: gateway.Status(err).Proto()}
		if re := (*gateway.ReplyError)(nil); errors.As(err, &re) {
			out.Header, out.Trailer = re.Header, re.Trailer
		}
		return out
	}
	return &operations.Result{Body: res.Body, ContentType: res.ContentType,
		Header: res.Header, Trailer: res.Trailer, HTTPStatus: res.HTTPStatus}
}

// opError gives the errors of the operations Store their gRPC status.
func opError(err error) error { return status.Error(operations.Code(err), err.Error()) }
