package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
)

// The streaming scenarios: WatchOrder streams of the same messages events
// each, at concurrency 1 and 64 (streams side by side):
//
//	grpc-echo-stream      grpc-echo's WatchOrder, called directly: one grpc-go hop
//	figway-stream         gRPC client → figway → RabbitMQ → SDK stream worker → back
//	figway-stream-rest    figway-stream through REST, newline-delimited JSON
//	figway-stream-legacy  gRPC client → figway → grpc-echo's WatchOrder: the
//	                      legacy passthrough, the call pinned to legacy
//
// Each event carries the time its sender sent it: the caller's
// per-message latency is from there to its receipt.
var streamScenarios = []string{"grpc-echo-stream", "figway-stream", "figway-stream-rest", "figway-stream-legacy"}

// sendEvents sends n events of the order id with send, as fast as send
// takes them.
func sendEvents(id string, n int, send func(*ordersv1.OrderEvent) error) error {
	for range n {
		if err := send(&ordersv1.OrderEvent{OrderId: id, Status: ordersv1.OrderStatus_ORDER_STATUS_PLACED, At: timestamppb.Now()}); err != nil {
			return err
		}
	}
	return nil
}

// streamResult is what one streaming scenario at one concurrency
// measured. Its result counts complete streams, with p50 and p99 of a
// whole stream, and CPU per message.
type streamResult struct {
	result
	messages       int
	msgP50, msgP99 time.Duration // from the sender's timestamp to the caller's receipt
}

func (r streamResult) mps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.messages) / r.elapsed.Seconds()
}

// receive makes one WatchOrder call and appends each message's latency to
// lat; it fails past limit messages.
type receive func(ctx context.Context, lat []time.Duration, limit int) ([]time.Duration, error)

// grpcStream calls WatchOrder(id) through c, with md as its metadata.
func grpcStream(c ordersv1.OrderServiceClient, id string, md metadata.MD) receive {
	return func(ctx context.Context, lat []time.Duration, limit int) ([]time.Duration, error) {
		if md != nil {
			ctx = metadata.NewOutgoingContext(ctx, md)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		s, err := c.WatchOrder(ctx, &ordersv1.WatchOrderRequest{OrderId: id})
		if err != nil {
			return lat, err
		}
		for len(lat) <= limit {
			e, err := s.Recv()
			if err == io.EOF {
				return lat, nil
			}
			if err != nil {
				return lat, err
			}
			now := time.Now()
			if len(e.GetOrderId()) != len(id) {
				return lat, errors.New("wrong message")
			}
			lat = append(lat, now.Sub(e.GetAt().AsTime()))
		}
		return lat, fmt.Errorf("more than %d messages", limit)
	}
}

// restStream GETs WatchOrder(id)'s REST binding from figway's REST ingress
// at addr and reads its newline-delimited JSON.
func restStream(client *http.Client, addr, id string) receive {
	u := "http://" + addr + "/v1/orders/" + url.PathEscape(id) + ":watch"
	return func(ctx context.Context, lat []time.Duration, limit int) ([]time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return lat, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return lat, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return lat, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
		}
		lines := bufio.NewScanner(resp.Body)
		for lines.Scan() {
			now := time.Now()
			var line struct {
				Result *struct {
					OrderID string    `json:"orderId"`
					At      time.Time `json:"at"`
				} `json:"result"`
				Error json.RawMessage `json:"error"`
			}
			if err := json.Unmarshal(lines.Bytes(), &line); err != nil {
				return lat, fmt.Errorf("line %d: %w", len(lat)+1, err)
			}
			if line.Error != nil {
				return lat, fmt.Errorf("the stream failed: %s", line.Error)
			}
			if line.Result == nil || len(line.Result.OrderID) != len(id) {
				return lat, errors.New("wrong message")
			}
			lat = append(lat, now.Sub(line.Result.At))
			if len(lat) > limit {
				return lat, fmt.Errorf("more than %d messages", limit)
			}
		}
		return lat, lines.Err()
	}
}

// measureStreams runs the streaming scenarios with streams of messages
// events: grpc-echo-stream against a streaming echo process of its own,
// the figway ones through a figway that passes pinned calls through to
// that echo process. The service process (startService) runs the SDK
// stream workers.
func measureStreams(dir, url string, dur time.Duration, channels, messages int, id string, ps *procs) ([]streamResult, error) {
	wanted := len(selected) == 0
	for _, s := range streamScenarios {
		wanted = wanted || selected[s]
	}
	if !wanted {
		return nil, nil
	}
	var rs []streamResult
	measure := func(name string, recv receive) {
		rs = append(rs, streamScenario(name, recv, dur, messages, ps)...)
	}

	addr, pid, stopEcho, err := startStreamingEcho(messages)
	if err != nil {
		return nil, err
	}
	defer stopEcho()
	ps.echo = pid
	defer func() { ps.echo = 0 }()
	econn, err := dialGRPC(addr)
	if err != nil {
		return nil, err
	}
	defer econn.Close()
	measure("grpc-echo-stream", grpcStream(ordersv1.NewOrderServiceClient(econn), id, nil))

	fw, err := startFigway(dir, url, channels, addr)
	if err != nil {
		return nil, err
	}
	defer fw.stop()
	figway := ps.figway
	ps.figway = fw.cmd.Process.Pid
	defer func() { ps.figway = figway }()
	fconn, err := dialGRPC(fw.grpc)
	if err != nil {
		return nil, err
	}
	defer fconn.Close()
	fc := ordersv1.NewOrderServiceClient(fconn)
	measure("figway-stream", grpcStream(fc, id, nil))
	measure("figway-stream-rest", restStream(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}, fw.http, id))
	measure("figway-stream-legacy", grpcStream(fc, id, metadata.Pairs("x-bench-pin", "legacy")))
	return rs, nil
}

// streamScenario runs recv, streams of messages events, as the streaming
// scenario name at concurrency 1 and 64, dur each, unless -only leaves it
// out, with each message's latency and the CPU each process of ps spent
// per message; it prints each result as it comes.
func streamScenario(name string, recv receive, dur time.Duration, messages int, ps *procs) []streamResult {
	if len(selected) > 0 && !selected[name] {
		return nil
	}
	warm, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	recv(warm, nil, messages) // warm up: connections, the workers' consumers
	cancel()
	var rs []streamResult
	for _, c := range []int{1, 64} {
		var (
			mu  sync.Mutex
			lat []time.Duration
		)
		call := func(ctx context.Context) error {
			mine, err := recv(ctx, make([]time.Duration, 0, messages), messages)
			if err == nil && len(mine) != messages {
				err = fmt.Errorf("%d messages; want %d", len(mine), messages)
			}
			if err != nil {
				return err
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
			return nil
		}
		before := ps.now()
		// At most 2,000,000 messages in all, and a stream per goroutine
		// at least.
		r := streamResult{result: load(name, c, dur, max(c, 2_000_000/messages), call)}
		r.messages = len(lat)
		r.cpu = ps.now().perCall(before, r.messages)
		r.msgP50, r.msgP99 = percentiles(lat)
		rs = append(rs, r)
		fmt.Fprintf(os.Stderr, "  %-20s c=%-3d %8.0f msgs/s  stream p50 %-10v msg p50 %-10v p99 %-10v errors %d  cpu/msg %.1fµs\n",
			name, c, r.mps(), r.p50, r.msgP50, r.msgP99, r.errors, r.cpu.total())
	}
	return rs
}

// reportStreams writes the streaming scenarios' table, and how figway's
// streams compare with grpc-echo's and with the passthrough's at c=64.
func reportStreams(w io.Writer, rs []streamResult, messages int) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stream scenario\tc\tstreams\terrors\tmsgs\tmsgs/s\tstream p50\tmsg p50\tmsg p99\tcpu:gateway\tcpu:broker\tcpu:worker\tcpu:other\tcpu:all\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.0f\t%v\t%v\t%v\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", r.scenario, r.conc, r.calls, r.errors, r.messages, r.mps(),
			r.p50.Round(time.Microsecond), r.msgP50.Round(time.Microsecond), r.msgP99.Round(time.Microsecond),
			r.cpu.figway, r.cpu.broker, r.cpu.worker, r.cpu.other, r.cpu.total())
	}
	tw.Flush()
	fmt.Fprintf(w, "streams: %d messages each; msg p50/p99 from the sender's timestamp to the caller's receipt; cpu: µs per message, as above (the echo server's in cpu:other)\n", messages)
	find := func(name string) (streamResult, bool) {
		for _, r := range rs {
			if r.scenario == name && r.conc == 64 {
				return r, true
			}
		}
		return streamResult{}, false
	}
	echo, ok := find("grpc-echo-stream")
	fs, okFS := find("figway-stream")
	if !ok || !okFS || echo.mps() == 0 {
		return
	}
	line := fmt.Sprintf("streams (c=64): figway-stream %.0f msgs/s = %.2f of grpc-echo-stream's %.0f, gateway cpu %.1fµs/msg",
		fs.mps(), fs.mps()/echo.mps(), echo.mps(), fs.cpu.figway)
	if lg, ok := find("figway-stream-legacy"); ok {
		line += fmt.Sprintf("; figway-stream-legacy (passthrough) %.0f msgs/s = %.2f, %.1fµs/msg", lg.mps(), lg.mps()/echo.mps(), lg.cpu.figway)
	}
	if rest, ok := find("figway-stream-rest"); ok {
		line += fmt.Sprintf("; figway-stream-rest %.0f msgs/s = %.2f, %.1fµs/msg", rest.mps(), rest.mps()/echo.mps(), rest.cpu.figway)
	}
	fmt.Fprintln(w, line)
}
