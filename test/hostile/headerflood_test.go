package hostile

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/proc"
)

// floodBlock returns the HPACK block of a GetOrder call with about size
// bytes of metadata as literal values of 16,000 bytes, not Huffman-coded
// and never indexed: bytes a decoder must copy to keep, as a client that
// ignores the server's SETTINGS_MAX_HEADER_LIST_SIZE sends them.
func floodBlock(addr string, size int) []byte {
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/orders.v1.OrderService/GetOrder"},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1], Sensitive: true})
	}
	// A literal never indexed (0x10) with a new name, its length in 7 bits
	// with H=0, then its value's length as a 7-bit-prefix integer.
	value := strings.Repeat("p", 16000)
	field := append([]byte{0x10, 5}, "x-pad"...)
	field = append(field, 0x7f) // 127 + the rest, 7 bits a byte
	for n := len(value) - 127; ; n >>= 7 {
		if n < 128 {
			field = append(field, byte(n))
			break
		}
		field = append(field, byte(n&0x7f|0x80))
	}
	field = append(field, value...)
	for n := 0; n < size; n += len(value) {
		b.Write(field)
	}
	return b.Bytes()
}

// headerFlood opens conns HTTP/2 connections to addr and sends streams
// streams on each, one after another, each with a header list of size
// bytes and never a message. It returns, once figway has closed every
// connection or after wait, how many it closed: a server that will not
// keep a header list that large stops reading a connection that sends one
// (x/net/http2 since CVE-2023-45288's fix, on the first CONTINUATION past
// the limit).
func headerFlood(t *testing.T, addr string, conns, streams, size int, wait time.Duration) (closed int) {
	t.Helper()
	block := floodBlock(addr, size)
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(wait))
		c.Write([]byte(http2.ClientPreface))
		fr := http2.NewFramer(c, c)
		fr.WriteSettings()
		wg.Go(func() { // the writer, in frames of 16 KB
			const frame = 16384
			for i := range streams {
				id := uint32(2*i + 1)
				if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[:frame]}) != nil {
					return
				}
				for rest := block[frame:]; len(rest) > 0; {
					n := min(frame, len(rest))
					if fr.WriteContinuation(id, n == len(rest), rest[:n]) != nil {
						return
					}
					rest = rest[n:]
				}
			}
		})
		wg.Go(func() { // the reader, until figway closes or the deadline
			for {
				f, err := fr.ReadFrame()
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return
				}
				if _, goaway := f.(*http2.GoAwayFrame); err != nil || goaway {
					mu.Lock()
					closed++
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return closed
}

// TestHeaderFloodKeepsMemory: 60 gRPC streams, each sending 15 MB of
// metadata and never a message, once held ~1 GB of figway's RSS (its
// baseline is ~22 MB): grpc-go's default header list size is 16 MiB.
// Over max_header_bytes (64 KiB by default) a stream is reset before its
// headers are kept: figway's RSS stays far below 200 MB, and a fresh
// client is served meanwhile.
//
// FIGWAY_MEASURE_HEADER_FLOOD=BINARY runs the same flood against another
// figway binary too (one built before the bound, say) and logs its RSS,
// over 20 seconds of the flood: the number the bound is measured against.
func TestHeaderFloodKeepsMemory(t *testing.T) {
	const (
		conns   = 6
		streams = 10
		size    = 15 << 20
	)
	bins := []string{proc.BuildFigway(t)}
	if other := os.Getenv("FIGWAY_MEASURE_HEADER_FLOOD"); other != "" {
		bins = append(bins, other)
	}
	for i, bin := range bins {
		measure := i > 0
		t.Run(map[bool]string{false: "this figway", true: "FIGWAY_MEASURE_HEADER_FLOOD"}[measure], func(t *testing.T) {
			a := figway.NewAddrs(t)
			path := figway.WriteRoutes(t, "", a, "amqp://guest:guest@"+proc.FreeAddr(t)+"/", nil)
			p := proc.Start(t, "figway", bin, "serve", "-config", path)
			figway.WaitHTTP(t, "http://"+a.Admin+"/healthz", 200, 20*time.Second)
			base := figway.RSS(t, p.Cmd.Process.Pid)

			var peak int
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					peak = max(peak, figway.RSS(t, p.Cmd.Process.Pid))
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}()
			start := time.Now()
			wait := 30 * time.Second
			if measure {
				wait = 20 * time.Second
			}
			closed := headerFlood(t, a.GRPC, conns, streams, size, wait)
			took := time.Since(start)
			// A fresh client while the flood's connections are open.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := ordersv1.NewOrderServiceClient(figway.Dial(t, a.GRPC)).GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "o-1"})
			cancel()
			close(stop)
			<-sampled
			t.Logf("%d connections sending %d streams of %d MB of metadata: %d closed by figway in %v; figway RSS %d MiB before, peak %d MiB",
				conns, conns*streams, size>>20, closed, took.Round(time.Millisecond), base>>10, peak>>10)
			if measure {
				return
			}
			if closed != conns {
				t.Errorf("figway closed %d of the %d flooding connections; want every one", closed, conns)
			}
			if peak > 200<<10 {
				t.Errorf("figway's RSS peaked at %d MiB; want under 200 MiB", peak>>10)
			}
			if status.Code(err) != codes.Unavailable {
				t.Errorf("fresh gRPC client during the flood = %v; want answered at once (UNAVAILABLE: no broker)", err)
			}
		})
	}
}
