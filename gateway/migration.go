package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/figway/figway/resilience"
	"github.com/figway/figway/wire"
)

// Migration counts what a route's strangler-fig settings did: where canary
// calls went, fallbacks to legacy, and shadow copies and their comparisons.
type Migration struct {
	CanaryBroker, CanaryLegacy uint64
	// Calls pinned to a side by the route's pin_by header.
	PinnedBroker, PinnedLegacy uint64
	Fallbacks                  uint64
	// NoConsumer counts the rpc calls not published because the route's
	// queues had no consumer: refused, or sent to legacy on a fallback
	// route.
	NoConsumer uint64
	// FallingBack is true while the route's calls go to legacy because the
	// broker path refuses them.
	FallingBack bool
	// Shadow copies: queued and published, dropped because the queue was
	// full (never slowing the caller), failed on the broker side, and —
	// with compare — replies that matched legacy's or not.
	ShadowSent, ShadowDropped, ShadowFailed uint64
	ShadowMatched, ShadowMismatched         uint64
	// ShadowSampledOut counts the calls a sampling shadow route
	// (shadow: {percent: N}) did not mirror.
	ShadowSampledOut uint64
	// RecentMismatches are the differing field paths of the last few
	// mismatches, newest first.
	RecentMismatches [][]string
}

type migrationStats struct {
	canaryBroker, canaryLegacy, fallbacks   atomic.Uint64
	noConsumer                              atomic.Uint64
	pinnedBroker, pinnedLegacy              atomic.Uint64
	shadowSampledOut                        atomic.Uint64
	fallingBack                             atomic.Bool
	shadowSent, shadowDropped, shadowFailed atomic.Uint64
	shadowMatched, shadowMismatched         atomic.Uint64
	recent                                  recentMismatches
}

// Migration returns the counters of method's route (they survive reloads).
func (g *Gateway) Migration(method string) Migration {
	s := g.stats(method)
	return Migration{
		CanaryBroker: s.canaryBroker.Load(), CanaryLegacy: s.canaryLegacy.Load(),
		Fallbacks: s.fallbacks.Load(), FallingBack: s.fallingBack.Load(), NoConsumer: s.noConsumer.Load(),
		ShadowSent: s.shadowSent.Load(), ShadowDropped: s.shadowDropped.Load(), ShadowFailed: s.shadowFailed.Load(),
		ShadowMatched: s.shadowMatched.Load(), ShadowMismatched: s.shadowMismatched.Load(),
		PinnedBroker: s.pinnedBroker.Load(), PinnedLegacy: s.pinnedLegacy.Load(),
		ShadowSampledOut: s.shadowSampledOut.Load(),
		RecentMismatches: s.recent.get(),
	}
}

func (g *Gateway) stats(method string) *migrationStats {
	if s, ok := g.migration.Load(method); ok {
		return s.(*migrationStats)
	}
	s, _ := g.migration.LoadOrStore(method, new(migrationStats))
	return s.(*migrationStats)
}

// toBroker decides the side of a canary call (see [sampled]). A caller
// that a weight sends to the broker is sent there at every higher weight
// too: a ramp's step moves only the callers it adds.
func (g *Gateway) toBroker(r *Route, c *Call) bool { return sampled(g.weight(r), r.StickyBy, c) }

// sampled reports whether a call falls within percent of the calls: by
// hash of the stickyBy header's value when the call has one, so that a
// caller is always in or always out, else at random.
func sampled(percent int, stickyBy string, c *Call) bool {
	switch {
	case percent >= 100:
		return true
	case percent <= 0:
		return false
	}
	if stickyBy != "" && c.Header != nil {
		if vs := c.Header(stickyBy); len(vs) > 0 {
			h := fnv.New64a()
			h.Write([]byte(vs[0]))
			return h.Sum64()%100 < uint64(percent)
		}
	}
	return rand.IntN(100) < percent
}

// pin returns the side the call's pin_by header pins it to on broker
// route r, or "" when it names none, names another value, or names legacy
// while the gateway has no legacy upstream: a pin never reaches a side
// the route does not have.
func (g *Gateway) pin(r *Route, c *Call) Target {
	if r.PinBy == "" || c.Header == nil {
		return ""
	}
	vs := c.Header(r.PinBy)
	if len(vs) == 0 {
		return ""
	}
	switch t := Target(strings.ToLower(strings.TrimSpace(vs[0]))); t {
	case TargetBroker:
		return t
	case TargetLegacy:
		if g.legacy != nil {
			return t
		}
	}
	return ""
}

// fallsBack reports whether a failed broker call may go to legacy instead:
// only when nothing was published, so the call cannot run twice.
func fallsBack(err error) bool {
	return errors.Is(err, ErrBreakerOpen) || errors.Is(err, ErrNotPublished) || errors.Is(err, ErrNoConsumer)
}

// noteFallback logs a route's fallback state when it changes, not per call.
func (g *Gateway) noteFallback(r *Route, on bool, cause error) {
	s := g.stats(r.Method)
	if s.fallingBack.CompareAndSwap(!on, on) {
		if on {
			g.log.Warn("falling back to legacy", "route", r.Method, "err", cause)
		} else {
			g.log.Info("broker path restored; fallback to legacy ended", "route", r.Method)
		}
	}
}

// viaLegacy sends a call to the legacy service, as protobuf, within the
// route's deadline.
func (g *Gateway) viaLegacy(ctx context.Context, r *Route, c *Call) (*Result, error) {
	g.traceSide(ctx, TargetLegacy)
	now := time.Now()
	if deadline, ok := resilience.Deadline(ctx, now, r.Timeout); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	types := r.types
	body, err := transcode(c.Body, c.ContentType, wire.ContentTypeProtobuf, r.Input, types)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", r.Method, ErrBadRequest, err)
	}
	resp, header, trailer, err := g.legacy.Unary(ctx, "/"+r.Method, body, c.Metadata)
	if err != nil {
		return nil, err // the upstream's status, as it came
	}
	out, err := transcode(resp, wire.ContentTypeProtobuf, c.Accept, r.Output, types)
	if err != nil {
		return nil, fmt.Errorf("%s: legacy %w: %v", r.Method, ErrBadReply, err)
	}
	return &Result{Body: out, ContentType: c.Accept, Header: header, Trailer: trailer}, nil
}

// shadowJob is one call mirrored to the broker off the caller's path.
type shadowJob struct {
	route *Route
	body  []byte // protobuf
	md    map[string][]string
	trace string
	// link is the caller's span, which the copy's span links to when
	// tracing is on.
	link      trace.SpanContext
	legacy    []byte // protobuf reply of legacy, when it succeeded
	legacyErr error
	// legacyHeader and legacyTrailer are legacy's reply metadata.
	legacyHeader, legacyTrailer metadata.MD
}

// shadowQueue bounds the shadow copies waiting; past it they are dropped
// and counted, never slowing the caller.
const (
	shadowQueue   = 1024
	shadowWorkers = 8
)

// shadow answers from legacy and mirrors the call to the broker.
func (g *Gateway) shadow(ctx context.Context, r *Route, c *Call) (*Result, error) {
	res, err := g.viaLegacy(ctx, r, c)
	s := g.stats(r.Method)
	if !sampled(r.ShadowPercent, r.StickyBy, c) {
		s.shadowSampledOut.Add(1)
		return res, err
	}
	md, ferr := forward(r.Forward, c.Header, r.ForwardLimits)
	if ferr != nil {
		s.shadowFailed.Add(1) // headers too large: no copy
		return res, err
	}
	job := &shadowJob{route: r, md: md, trace: c.Traceparent, legacyErr: err}
	if g.tracer != nil {
		job.link = trace.SpanContextFromContext(ctx)
	}
	job.body, _ = transcode(c.Body, c.ContentType, wire.ContentTypeProtobuf, r.Input, r.types)
	if err == nil && r.Compare {
		job.legacy, _ = transcode(res.Body, res.ContentType, wire.ContentTypeProtobuf, r.Output, r.types)
		job.legacyHeader, job.legacyTrailer = res.Header, res.Trailer
	}
	select {
	case g.shadows <- job:
	default:
		s.shadowDropped.Add(1)
	}
	return res, err
}

// Run mirrors shadow copies until ctx is cancelled. Without Run, shadow
// copies are dropped and counted.
func (g *Gateway) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range shadowWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case job := <-g.shadows:
					g.mirror(ctx, job)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// mirror publishes one shadow copy and, on a compare route, compares the
// broker side's reply with legacy's.
func (g *Gateway) mirror(ctx context.Context, job *shadowJob) {
	r, s := job.route, g.stats(job.route.Method)
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	body, err := transcode(job.body, wire.ContentTypeProtobuf, r.contentType, r.Input, r.types)
	if err != nil {
		s.shadowFailed.Add(1)
		return
	}
	req := &wire.Request{
		Method: r.Method, Body: body, ContentType: r.contentType, MessageID: wire.NewID(),
		Source: g.source, CloudEvents: r.cloudEvents(), Metadata: job.md, Shadow: true,
	}
	req.Traceparent, _ = traceContext(job.trace, "")
	if g.tracer != nil {
		var span trace.Span
		ctx, span = g.produce(ctx, r, req, job.link)
		defer func() { produced(span, req, nil) }()
	}
	if !r.Compare {
		req.Persistent = true
		if err := g.pub.Publish(ctx, r.Exchange, r.RoutingKey, req); err != nil {
			s.shadowFailed.Add(1)
			trace.SpanFromContext(ctx).RecordError(err)
			return
		}
		s.shadowSent.Add(1)
		return
	}
	deadline, _ := ctx.Deadline()
	req.Deadline = deadline
	rep, err := g.pub.Call(ctx, r.Exchange, r.RoutingKey, req)
	if err != nil {
		trace.SpanFromContext(ctx).RecordError(err)
		s.shadowFailed.Add(1)
		return
	}
	s.shadowSent.Add(1)
	if d := g.compare(r, job, rep); len(d) > 0 {
		s.shadowMismatched.Add(1)
		g.observeCompare(r, true)
		s.recent.add(d)
		g.log.WarnContext(ctx, "shadow reply differs from legacy's", "route", r.Method, "correlation_id", req.CorrelationID,
			"fields", strings.Join(d, ","), "legacy", g.render(r, job.legacy, job.legacyErr), "broker", g.render(r, rep.Body, replyErr(rep)))
		return
	}
	s.shadowMatched.Add(1)
	g.observeCompare(r, false)
}

func replyErr(rep *Reply) error {
	if rep.Status != nil {
		return rep.Status.Err()
	}
	return nil
}

// compare returns what differs between legacy's answer and the broker
// side's: the status codes, or the fields of the replies.
func (g *Gateway) compare(r *Route, job *shadowJob, rep *Reply) []string {
	lcode, bcode := status.Code(job.legacyErr), status.Code(replyErr(rep))
	if lcode != bcode {
		return []string{"status (" + lcode.String() + " vs " + bcode.String() + ")"}
	}
	if job.legacyErr != nil {
		return nil // both failed alike
	}
	d := diffMetadata("header", job.legacyHeader, rep.Header, r.ignoreMD)
	d = append(d, diffMetadata("trailer", job.legacyTrailer, rep.Trailer, r.ignoreMD)...)
	a, b := dynamicpb.NewMessage(r.Output), dynamicpb.NewMessage(r.Output)
	// Checked first: proto.Unmarshal panics on some malformed map entries
	// (see checkWire), and this runs off the caller's path.
	bb, err := replyBody(rep, wire.ContentTypeProtobuf, r)
	if err != nil || checkWire(job.legacy, r.Output) != nil || proto.Unmarshal(job.legacy, a) != nil || proto.Unmarshal(bb, b) != nil {
		return append(d, "body (does not decode)")
	}
	return append(d, diff(a, b, r.ignore)...)
}

// render shows a reply in logs as JSON, truncated.
func (g *Gateway) render(r *Route, body []byte, err error) string {
	const max = 512
	if err != nil {
		return "error: " + err.Error()
	}
	m := dynamicpb.NewMessage(r.Output)
	out := string(body)
	if checkWire(body, r.Output) == nil && proto.Unmarshal(body, m) == nil {
		if b, err := (protojson.MarshalOptions{Resolver: r.types}).Marshal(m); err == nil {
			out = string(b)
		}
	}
	if len(out) > max {
		out = out[:max] + "…"
	}
	return out
}
