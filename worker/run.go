package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/figway/figway/internal/batchconn"
	"github.com/figway/figway/wire"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Connection handling.
const (
	// backoffMin and backoffMax bound the wait between connection
	// attempts: it doubles on each failure, is jittered so that a fleet of
	// workers does not reconnect in lockstep after a broker restart, and
	// starts over once a connection has consumed.
	backoffMin = 100 * time.Millisecond
	backoffMax = 10 * time.Second
	// dialTimeout bounds the TCP connect and the AMQP handshake; then, as
	// setupTimeout, the session's setup: its channel, its consumer and the
	// cancel listener. A broker that takes the connection but does not
	// answer a basic.consume — a RabbitMQ 3.10 node whose quorum queue
	// elects a leader after another node stopped held one for 20 s in a
	// rolling restart, with no consumer on the queue meanwhile — is left
	// for the next URL.
	dialTimeout  = 10 * time.Second
	setupTimeout = dialTimeout
	// closeTimeout bounds the connection.close handshake, which a broker
	// that stopped reading (a memory or disk alarm) would never answer.
	closeTimeout = 5 * time.Second
)

var errNoHandlers = errors.New("worker: no handlers registered")

// Run connects to the broker, consumes [Config.Queue] and serves requests
// until ctx is cancelled. It returns an invalid [Config] at once, and an
// error the broker will not get over by itself (refused credentials or
// access, or a queue or exchange that exists with other properties).
// Anything else — a refused connection, a lost one, a missing queue — is
// logged and retried: at once on the next of [Config.URLs], and with
// capped, jittered exponential backoff once every URL has failed in a row;
// after every reconnect Run declares the topology again and resumes
// consuming.
//
// When ctx is cancelled, Run stops consuming (requests prefetched but not
// started go back to the queue), waits up to [Config.ShutdownGrace] for
// running handlers to reply, then cancels their contexts, closes the
// connection (unacknowledged requests go back to the queue too) and
// returns nil. A handler that ignores its context's cancellation outlives
// Run; whatever it returns is discarded.
//
// Run may be called once per Worker.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.cfg.validate(); err != nil {
		return err
	}
	if len(w.handlers) == 0 && len(w.streams) == 0 {
		return errNoHandlers
	}
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("worker: Run called twice")
	}
	// Handlers run under base, not ctx: at shutdown they get the grace
	// period to finish before base is cancelled, when Run returns.
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	// sem holds a token per running handler. It outlives connections: the
	// handlers of a lost connection hold their slot until they return.
	sem := make(chan struct{}, w.cfg.Concurrency)

	// failures counts the waits since a connection last consumed;
	// failed, the URLs that failed in a row since the last wait.
	urls := w.cfg.urls()
	failures, failed := 0, 0
	for i := 0; ; i++ {
		began := time.Now()
		consumed, err := w.session(ctx, base, sem, urls[i%len(urls)])
		if ctx.Err() != nil {
			w.log.Info("worker stopped", "queue", w.cfg.Queue)
			return nil
		}
		// Only a refusal while setting up is final: once consuming, a 406
		// can be the broker's consumer timeout on a slow handler.
		if !consumed && permanent(err) {
			return fmt.Errorf("worker: %w", err)
		}
		if consumed {
			failures = 0
			if time.Since(began) > time.Second {
				failed = 0 // it worked: walk the whole list again before waiting
			}
		}
		if failed++; failed < len(urls) {
			w.log.Warn("broker connection failed; trying the next URL", "queue", w.cfg.Queue, "error", err.Error())
			continue
		}
		failed = 0
		delay := backoff(failures)
		failures++
		w.log.Warn("broker connection failed; reconnecting", "queue", w.cfg.Queue, "error", err.Error(), "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			w.log.Info("worker stopped", "queue", w.cfg.Queue)
			return nil
		case <-t.C:
		}
	}
}

// backoff returns the wait before reconnect attempt n+1: backoffMin·2ⁿ,
// capped at backoffMax, less a random part of up to half ("equal jitter").
func backoff(n int) time.Duration {
	d := backoffMax
	if n < 20 {
		d = min(backoffMin<<n, backoffMax)
	}
	return d/2 + rand.N(d/2+1)
}

// permanent reports whether err is one that reconnecting will not cure.
func permanent(err error) bool {
	if errors.Is(err, amqp.ErrCredentials) || errors.Is(err, amqp.ErrSASL) {
		return true
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.AccessRefused, amqp.PreconditionFailed, amqp.NotAllowed:
			return true
		}
	}
	return false
}

// session is one connection to the broker and its one channel, which
// consumes requests and publishes their replies.
//
// The channel is shared by the handler goroutines, and amqp091-go channels
// are not safe for concurrent use, so every use of ch after setup —
// publishing a reply, acking, rejecting, cancelling the consumer — holds
// mu. A mutex rather than a publishing goroutine: a reply and its
// request's ack must go out together, in that order, on this very channel
// (acks are only valid on the channel that delivered), which a critical
// section says directly; a publisher goroutine would need a request and a
// result channel per reply to say the same, and would serialize exactly as
// much, since frames go out one at a time on the connection anyway.
type session struct {
	w    *Worker
	mu   sync.Mutex
	conn *amqp.Connection
	ch   *amqp.Channel
	tag  string // consumer tag
	// aside is the channel, in confirm mode, on which held suspects are
	// set aside (quarantine.go); opened when first needed, and again
	// after it failed. Only the dispatch loop uses it.
	aside *amqp.Channel
	// acks gathers the channel's acks; ended says the session is over,
	// for a gathering timer that fires late. Both are guarded by mu.
	acks  *acks
	ended bool
	// consumed says the session's consumer started: only then can its
	// end hand requests back to the queue (see handedBack).
	consumed bool
	// running counts the session's handlers started and not returned.
	running atomic.Int32
	// awaited says the dispatch loop holds a suspect that waits for the
	// running handlers to return (nextAlone): only then does a handler
	// that returns wake the loop.
	awaited atomic.Bool
	// frameMax is the connection's negotiated frame_max, which no reply's
	// headers may exceed (see reply).
	frameMax int
	// q is the quarantine of suspects (quarantine.go); only the dispatch
	// loop uses it.
	q quarantine
	// prefetch is the channel's prefetch now (see quarantine), guarded by
	// mu.
	prefetch int
	// idle hands a delivery to a handler goroutine of the session that
	// waits for one (see start); unbuffered.
	idle chan job
}

// job is a delivery for a handler goroutine, and the channel to signal
// when it is done (see start).
type job struct {
	d     *amqp.Delivery
	sem   chan struct{}
	done  chan<- struct{}
	alone bool // a suspect run alone
}

// handlerIdle is how long a handler goroutine waits for another delivery
// before it ends.
const handlerIdle = time.Second

// session connects, consumes and dispatches deliveries to handlers until
// the connection or channel is lost, or until ctx is cancelled, in which
// case it drains the handlers first. consumed reports whether it got as far
// as consuming; err says why it ended.
func (w *Worker) session(ctx, base context.Context, sem chan struct{}, url string) (consumed bool, err error) {
	conn, err := w.dial(ctx, url)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	// Every Notify* channel is buffered and drained by watch until the
	// connection closes, so amqp091-go never waits on us (docs/architecture.md, "Facts the code relies on").
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	setupDone := boundSetup(conn)
	ch, err := conn.Channel()
	if err != nil {
		_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
		return false, setupDone(fmt.Errorf("open channel: %w", err))
	}
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	cancelled := ch.NotifyCancel(make(chan string, 1))

	// Handlers of this session run under sctx. It ends, with the reason
	// as its cause, when the channel is lost — their requests will be
	// redelivered and their replies could not be acked, so they should
	// stop — or when session returns.
	sctx, lose := context.WithCancelCause(base)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		w.watch(lose, connClosed, chClosed, cancelled, blocked)
	}()
	// The cancel listener (cancel.go) ends with the connection: it is
	// waited for once the connection is closed.
	var cancelsDone <-chan struct{}
	defer func() {
		if cancelsDone != nil {
			<-cancelsDone
		}
	}()
	defer func() {
		lose(errors.New("session ended"))
		// Closing the connection hands every unacked request back to the
		// queue, and unblocks any write stuck on a blocked connection.
		_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
		<-watched
	}()

	s := &session{w: w, conn: conn, ch: ch, frameMax: conn.Config.FrameSize, idle: make(chan job)}
	s.acks = newAcks(ch, w.cfg.AckWindow, &w.stats.acks)
	defer s.end()
	deliveries, err := s.consume()
	if err == nil {
		s.consumed = true
		cancelsDone = w.listenCancels(conn)
	}
	if err := setupDone(err); err != nil {
		return s.consumed, err
	}
	w.stats.connects.Add(1)
	w.log.Info("consuming", "queue", w.cfg.Queue, "prefetch", w.cfg.Prefetch, "concurrency", w.cfg.Concurrency)
	return true, s.dispatch(ctx, sctx, sem, deliveries)
}

// dispatch hands each delivery to a handler, at most Concurrency at once
// (sem), and suspects to the quarantine, until ctx ends (the worker stops:
// it drains the handlers) or sctx does (the session is lost: its cause).
func (s *session) dispatch(ctx, sctx context.Context, sem chan struct{}, deliveries <-chan amqp.Delivery) error {
	q := &dispatchQueue{deliveries: deliveries, wake: make(chan struct{}, 1), aloneDone: make(chan struct{}, 1)}
	for {
		if len(q.pending) > 0 {
			d := q.pending[0]
			q.pending = q.pending[1:]
			if ended, err := s.take(ctx, sctx, sem, q, &d); ended {
				return err
			}
			continue
		}
		if d := s.nextAlone(); d != nil {
			if ended, err := s.start(ctx, sctx, sem, d, q.wake, q.aloneDone); ended {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return s.drain(sem)
		case <-sctx.Done():
			return context.Cause(sctx)
		case <-s.widenAt():
			var more []amqp.Delivery
			var err error
			if q.deliveries, more, err = s.widen(q.deliveries); err != nil {
				return err
			}
			q.pending = append(q.pending, more...)
		case <-q.wake:
		case <-q.aloneDone:
			q.pending = append(q.pending, s.doneAlone()...)
		case d, ok := <-q.deliveries:
			if !ok {
				return stopped(sctx)
			}
			if ended, err := s.take(ctx, sctx, sem, q, &d); ended {
				return err
			}
		}
	}
}

// dispatchQueue is what dispatch hands out: the consumer's deliveries (a
// new channel each time the prefetch changes) and, first, those the
// quarantine handed back; wake is signalled when a handler returns,
// aloneDone when a suspect run alone does: a suspect in quarantine may run
// now.
type dispatchQueue struct {
	deliveries      <-chan amqp.Delivery
	pending         []amqp.Delivery
	wake, aloneDone chan struct{}
}

// take dispatches d: a suspect goes to quarantine, narrowing the prefetch;
// while a suspect runs alone, d waits; anything else goes to a handler,
// widening the prefetch when the quarantine is over. It reports ended
// when the session ends, with its error.
func (s *session) take(ctx, sctx context.Context, sem chan struct{}, q *dispatchQueue, d *amqp.Delivery) (ended bool, err error) {
	var more []amqp.Delivery
	s.w.discount(d, time.Now())
	switch {
	case s.w.cfg.MaxDeliveries > 0 && suspect(d):
		q.deliveries, more, err = s.hold(d, q.deliveries)
	case s.q.alone:
		// Nothing starts while a suspect runs alone: if it crashes the
		// worker, this one is charged too.
		s.q.waiting = append(s.q.waiting, *d)
	default:
		q.deliveries, more, err = s.widen(q.deliveries)
		if err == nil {
			ended, err = s.start(ctx, sctx, sem, d, q.wake, q.aloneDone)
		}
	}
	q.pending = append(q.pending, more...)
	return ended || err != nil, err
}

// stopped is why a session's deliveries stopped: its channel closed or the
// broker cancelled its consumer, and watch says which by ending sctx.
func stopped(sctx context.Context) error {
	select {
	case <-sctx.Done():
		return context.Cause(sctx)
	case <-time.After(time.Second):
		return errors.New("deliveries stopped")
	}
}

// start runs d's handler once a slot of sem is free; when it returns, it
// signals aloneDone if d is a suspect run alone (s.q.alone), else wake
// if the dispatch loop awaits it (see run).
// If the session ends first, start reports ended, with the session's
// error, and leaves d unacked for the broker to deliver again.
func (s *session) start(ctx, sctx context.Context, sem chan struct{}, d *amqp.Delivery, wake, aloneDone chan<- struct{}) (ended bool, err error) {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		// d stays unacked: the queue gets it back on close.
		return true, s.drain(sem)
	case <-sctx.Done():
		return true, context.Cause(sctx)
	}
	if ctx.Err() != nil { // both were ready and select chose sem
		<-sem
		return true, s.drain(sem)
	}
	done := wake
	if s.q.alone {
		done = aloneDone // holds one: one suspect runs alone at a time
	}
	s.running.Add(1)
	j := job{d: d, sem: sem, done: done, alone: s.q.alone}
	select {
	case s.idle <- j:
	default:
		go s.handle(sctx, j)
	}
	return false, nil
}

// handle runs j, then the jobs start hands it while it waits for them, up
// to handlerIdle each, until ctx (the session's) ends. A handler goroutine
// that serves delivery after delivery costs no goroutine start, and no
// stack growth, per request: in a busy worker those were a tenth of its
// CPU time.
func (s *session) handle(ctx context.Context, j job) {
	idle := time.NewTimer(handlerIdle)
	defer idle.Stop()
	for {
		s.run(ctx, j)
		idle.Reset(handlerIdle)
		select {
		case j = <-s.idle:
		case <-idle.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// run serves j's delivery, then gives back its slot and signals j.done —
// a suspect run alone always, any other only if the dispatch loop awaits
// the handlers' return: a wake per request would cost a goroutine switch
// each.
func (s *session) run(ctx context.Context, j job) {
	defer func() {
		// running falls before awaited is read, and nextAlone sets
		// awaited before it reads running: one of them sees the other.
		s.running.Add(-1)
		<-j.sem
		if j.alone || s.awaited.Load() {
			select {
			case j.done <- struct{}{}:
			default: // signalled already
			}
		}
	}()
	s.serve(ctx, j.d)
}

// boundSetup closes conn unless the session's setup is done within
// setupTimeout: closing it ends whichever call of the setup still waits.
// The setup calls done with its error, nil if it succeeded; done returns
// the error to end the session with, if any.
func boundSetup(conn *amqp.Connection) (done func(error) error) {
	// The socket is closed at once: a broker that does not answer the
	// setup would not answer the close handshake either.
	t := time.AfterFunc(setupTimeout, func() { _ = conn.CloseDeadline(time.Now()) })
	return func(err error) error {
		if !t.Stop() {
			if err == nil {
				err = errors.New("connection closed")
			}
			return fmt.Errorf("session setup took over %v: %w", setupTimeout, err)
		}
		return err
	}
}

// dial connects to the broker at url. ctx bounds the TCP connect.
func (w *Worker) dial(ctx context.Context, url string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props["connection_name"] = "figway-worker " + w.cfg.Queue
	return amqp.DialConfig(url, amqp.Config{
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Bounds the AMQP handshake; amqp091-go clears it once open.
			if err := c.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
				c.Close()
				return nil, err
			}
			// A reply and its request's ack, and the replies of concurrent
			// handlers, go out in one write system call when they can.
			return batchconn.New(c, 0), nil
		},
	})
}

// consume declares the topology, sets the prefetch and starts consuming.
func (s *session) consume() (<-chan amqp.Delivery, error) {
	cfg := &s.w.cfg
	if cfg.Declare != nil {
		if err := declare(s.ch, cfg.Queue, cfg.Declare); err != nil {
			return nil, err
		}
	}
	// A session starts narrow when it refuses poison requests: the first
	// deliveries of a restarted worker are what its crashed predecessor
	// held (see quarantine).
	prefetch := cfg.Prefetch
	if cfg.MaxDeliveries > 0 {
		prefetch, s.q.narrow, s.q.until = 1, true, time.Now().Add(firstLook)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.consumeWith(prefetch)
}

// consumeWith sets the prefetch to n and starts consuming, under s.mu.
// basic.qos (global false) sets the prefetch of the consumers started
// after it: a consumer's own never changes.
func (s *session) consumeWith(n int) (<-chan amqp.Delivery, error) {
	const prefetchSize, global = 0, false
	if err := s.ch.Qos(n, prefetchSize, global); err != nil {
		return nil, fmt.Errorf("set prefetch %d: %w", n, err)
	}
	s.prefetch = n
	s.tag = "figway-worker-" + wire.NewID()
	const autoAck, exclusive, noLocal, noWait = false, false, false, false
	d, err := s.ch.Consume(s.w.cfg.Queue, s.tag, autoAck, exclusive, noLocal, noWait, nil)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", s.w.cfg.Queue, err)
	}
	return d, nil
}

// watch drains the Notify* channels of a session until its connection
// closes, calling lose with the reason the session can no longer serve.
func (w *Worker) watch(lose context.CancelCauseFunc, connClosed, chClosed <-chan *amqp.Error, cancelled <-chan string, blocked <-chan amqp.Blocking) {
	for {
		select {
		case e, ok := <-connClosed:
			if ok && e != nil {
				lose(fmt.Errorf("connection lost: %w", e))
			} else {
				lose(errors.New("connection closed"))
			}
			// amqp091-go closes every other Notify* channel with the
			// connection, after at most one buffered send each.
			return
		case e, ok := <-chClosed:
			if !ok {
				chClosed = nil
			}
			if e != nil {
				lose(fmt.Errorf("channel lost: %w", e))
			}
		case tag, ok := <-cancelled:
			if !ok {
				cancelled = nil
				continue
			}
			lose(fmt.Errorf("consumer %s cancelled by the broker (queue deleted?)", tag))
		case b, ok := <-blocked:
			if !ok {
				blocked = nil
				continue
			}
			if b.Active {
				w.log.Warn("broker blocked the connection: replies wait", "queue", w.cfg.Queue, "reason", b.Reason)
			} else {
				w.log.Info("broker unblocked the connection", "queue", w.cfg.Queue)
			}
		}
	}
}

// drain stops consuming and waits, up to the shutdown grace, for running
// handlers to finish. It takes every slot of sem: when it has them all, no
// handler runs. Slots it has taken are never given back; Run is ending.
func (s *session) drain(sem chan struct{}) error {
	w := s.w
	s.mu.Lock()
	err := s.ch.Cancel(s.tag, false)
	s.mu.Unlock()
	if err != nil {
		w.log.Debug("cancel consumer", "queue", w.cfg.Queue, "error", err.Error())
	}
	// The acks of the requests answered go out before the connection
	// closes, or the broker would deliver them again.
	defer s.flushAcks(true)
	grace := time.NewTimer(w.cfg.ShutdownGrace)
	defer grace.Stop()
	for i := range cap(sem) {
		select {
		case sem <- struct{}{}:
		case <-grace.C:
			w.log.Warn("shutdown grace elapsed: cancelling handlers; their requests go back to the queue",
				"queue", w.cfg.Queue, "running", cap(sem)-i)
			return nil
		}
	}
	return nil
}

// armAcks starts the timer of s's gathered acks.
func (s *session) armAcks(d time.Duration) *time.Timer { return time.AfterFunc(d, s.flushDue) }

// flushDue sends the gathered acks whose window has ended: the timer's
// work.
func (s *session) flushDue() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.ended || s.acks.flushAt.IsZero() || now.Before(s.acks.flushAt) {
		return // ended, or the timer was reset while it fired: it fires again
	}
	if err := s.acks.flush(now, false, s.armAcks); err != nil {
		s.w.log.Warn("acks not sent; the broker will redeliver their requests", "queue", s.w.cfg.Queue, "error", err.Error())
	}
}

// flushAcks sends the gathered acks now: every one with all set, else
// those due.
func (s *session) flushAcks(all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	if err := s.acks.flush(time.Now(), all, s.armAcks); err != nil {
		s.w.log.Warn("acks not sent; the broker will redeliver their requests", "queue", s.w.cfg.Queue, "error", err.Error())
	}
}

// end stops gathering acks: the channel is gone or about to be. The
// requests not settled go back to the queue, charged; the worker
// remembers that (handedBack).
func (s *session) end() {
	s.mu.Lock()
	s.ended = true
	s.acks.stop()
	s.mu.Unlock()
	if s.consumed {
		// A session that never consumed — the queue not declared yet,
		// say — handed nothing back: counting it would discount a
		// crash's charge (a restarted worker that failed twice to
		// consume before figway declared the queue ran a poison
		// request as a fresh one, and crashed 5 times instead of 3).
		s.w.handed.lost(time.Now())
	}
	if s.q.timer != nil {
		s.q.timer.Stop()
	}
}

// finish gathers the ack of d, done. s.mu is held.
func (s *session) finish(d *amqp.Delivery) error {
	return s.acks.finish(d.DeliveryTag, time.Now(), s.running.Load() <= 1, s.armAcks)
}
