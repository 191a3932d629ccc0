package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
)

// echoServer is the grpc-echo baseline: one plain grpc-go hop. Its
// WatchOrder streams messages events (grpc-echo-stream).
type echoServer struct {
	ordersv1.UnimplementedOrderServiceServer
	messages int
}

func (e echoServer) WatchOrder(req *ordersv1.WatchOrderRequest, s grpc.ServerStreamingServer[ordersv1.OrderEvent]) error {
	return sendEvents(req.GetOrderId(), e.messages, s.Send)
}

func (echoServer) GetOrder(_ context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
	return &ordersv1.Order{OrderId: req.GetOrderId()}, nil
}

// startEcho serves the echo in this process: grpc-echo-inproc, a gRPC hop
// that never leaves the Go scheduler.
func startEcho() (addr string, pid int, stop func(), err error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", 0, nil, err
	}
	s := grpc.NewServer()
	ordersv1.RegisterOrderServiceServer(s, echoServer{})
	go s.Serve(lis)
	return lis.Addr().String(), 0, s.Stop, nil // pid 0: its CPU is this process's
}

// echoEnv, set to an address, makes the bench's binary (or its test
// binary) the grpc-echo server on that address and nothing else: that is
// how startEchoProcess runs it.
const echoEnv = "FIGWAY_BENCH_ECHO"

// streamMessagesEnv is the number of events of the echo server's
// WatchOrder streams, when the bench runs it as a process of its own.
const streamMessagesEnv = "FIGWAY_BENCH_STREAM_MESSAGES"

// exitServingEcho serves the echo on addr until killed.
func exitServingEcho(addr string) {
	messages, _ := strconv.Atoi(os.Getenv(streamMessagesEnv))
	err := serveOrders(addr, echoServer{messages: messages})
	fmt.Fprintln(os.Stderr, "bench: echo server:", err)
	os.Exit(1)
}

// serveOrders serves srv as the OrderService on addr, with grpc-go's
// defaults, until the process ends: the servers the bench runs as
// processes of their own.
func serveOrders(addr string, srv ordersv1.OrderServiceServer) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := grpc.NewServer()
	ordersv1.RegisterOrderServiceServer(s, srv)
	return s.Serve(lis)
}

// startEchoProcess runs the echo server as a process of its own, as figway
// runs: grpc-echo. A call to it crosses two process boundaries, as the
// gRPC hop into figway does; each wakes a process that was waiting in the
// kernel, which costs far more than a goroutine switch on a small VM.
func startEchoProcess() (addr string, pid int, stop func(), err error) {
	return startStreamingEcho(0)
}

// startStreamingEcho is startEchoProcess with WatchOrder streams of
// messages events.
func startStreamingEcho(messages int) (addr string, pid int, stop func(), err error) {
	addr = freeAddr()
	pid, stop, err = startSelf(echoEnv, addr, addr, fmt.Sprintf("%s=%d", streamMessagesEnv, messages))
	return addr, pid, stop, err
}

// startSelf runs this binary as a server of its own, with env set to
// value (and the variables of extra), and waits until it listens on addr.
func startSelf(env, value, addr string, extra ...string) (pid int, stop func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return 0, nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(append(os.Environ(), env+"="+value), extra...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	if err := waitListening(addr, 20*time.Second); err != nil {
		stop()
		return 0, nil, fmt.Errorf("%s: %w", env, err)
	}
	return cmd.Process.Pid, stop, nil
}

// waitListening waits until something accepts connections on addr, for
// at most d.
func waitListening(addr string, d time.Duration) error {
	for end := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("not listening on %s after %v", addr, d)
		}
	}
}

func dialGRPC(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// rawClient is the amqp-raw baseline: request-reply with direct reply-to
// over a few channels, no confirms, no gateway — the broker's floor. With
// wire set it is amqp-wire: each request is the message figway publishes
// (wire.Request as figway renders an rpc request: properties, expiration,
// deadline and trace context headers), mandatory, on channels in confirm
// mode — the floor of figway's wire protocol.
type rawClient struct {
	wire  bool
	conn  *amqp.Connection
	lanes []*rawLane
	next  atomic.Uint32
	seq   atomic.Uint64
}

type rawLane struct {
	mu      sync.Mutex // serializes publishes on ch
	ch      *amqp.Channel
	pending sync.Map // correlation id → chan []byte
}

func newRawClient(url string, channels int, wire bool) (*rawClient, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	c := &rawClient{conn: conn, wire: wire}
	for range channels {
		ch, err := conn.Channel()
		if err != nil {
			conn.Close()
			return nil, err
		}
		ds, err := ch.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
		if err != nil {
			conn.Close()
			return nil, err
		}
		if wire {
			if err := ch.Confirm(false); err != nil {
				conn.Close()
				return nil, err
			}
			confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1024))
			go func() {
				for range confirms {
				}
			}()
		}
		l := &rawLane{ch: ch}
		go func() {
			for d := range ds {
				if w, ok := l.pending.LoadAndDelete(d.CorrelationId); ok {
					w.(chan []byte) <- d.Body
				}
			}
		}()
		c.lanes = append(c.lanes, l)
	}
	return c, nil
}

func (c *rawClient) call(ctx context.Context, queue string, body []byte) error {
	b, err := c.roundTrip(ctx, queue, body)
	if err == nil && len(b) != len(body) {
		return fmt.Errorf("reply of %d bytes; want %d", len(b), len(body))
	}
	return err
}

// roundTrip sends body to queue and returns the reply's body.
func (c *rawClient) roundTrip(ctx context.Context, queue string, body []byte) ([]byte, error) {
	l := c.lanes[c.next.Add(1)%uint32(len(c.lanes))]
	id := strconv.FormatUint(c.seq.Add(1), 16)
	msg := amqp.Publishing{CorrelationId: id, ReplyTo: wire.DirectReplyTo, Body: body}
	if c.wire {
		id = wire.NewID()
		req := wire.Request{
			Method: "orders.v1.OrderService/CancelOrder", Body: body, ContentType: wire.ContentTypeProtobuf,
			MessageID: wire.NewID(), Source: "figway://bench", CorrelationID: id, ReplyTo: wire.DirectReplyTo,
			Deadline: time.Now().Add(30 * time.Second), Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		}
		msg = amqpwire.Publishing(&req, time.Now())
	}
	w := make(chan []byte, 1)
	l.pending.Store(id, w)
	l.mu.Lock()
	err := l.ch.Publish("", queue, c.wire, false, msg)
	l.mu.Unlock()
	if err != nil {
		l.pending.Delete(id)
		return nil, err
	}
	select {
	case b := <-w:
		return b, nil
	case <-ctx.Done():
		l.pending.Delete(id)
		return nil, ctx.Err()
	}
}

// tutorialCall is the amqp-tutorial baseline: RabbitMQ's tutorial RPC
// pattern, a channel and an exclusive reply queue per call.
func tutorialCall(ctx context.Context, conn *amqp.Connection, queue string, body []byte, seq *atomic.Uint64) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		return err
	}
	ds, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		return err
	}
	id := strconv.FormatUint(seq.Add(1), 16)
	if err := ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{CorrelationId: id, ReplyTo: q.Name, Body: body}); err != nil {
		return err
	}
	for {
		select {
		case d := <-ds:
			if d.CorrelationId == id {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
