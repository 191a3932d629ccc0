package hostile

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/prom"
	"github.com/figway/figway/internal/testing/rabbitmq"
)

// ordinaryCallers calls GetOrder from n goroutines, alternating gRPC and
// REST, until stop is closed, and returns how many calls succeeded and
// the failures.
func ordinaryCallers(orders ordersv1.OrderServiceClient, httpAddr string, n int, stop <-chan struct{}) func() (ok int, failures []string) {
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		count int
		fails []string
	)
	for i := range n {
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("o-%d-%d", i, j)
				var err error
				if i%2 == 0 {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, err = orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: id})
					cancel()
				} else if code, body := figway.HTTPGet("http://" + httpAddr + "/v1/orders/" + id); code != http.StatusOK {
					err = fmt.Errorf("REST %d %s", code, body)
				}
				mu.Lock()
				if err != nil {
					fails = append(fails, err.Error())
				} else {
					count++
				}
				mu.Unlock()
			}
		})
	}
	return func() (int, []string) {
		wg.Wait()
		return count, fails
	}
}

// TestHostileHeadersFailAlone sends what once closed the broker connection
// — a 200 KB tracestate with a valid traceparent, a 200 KB value of a
// forwarded header (and 40 KB of each, under max_header_bytes) — over
// gRPC and REST while ten ordinary callers run. The tracestate is
// truncated per W3C and the call served; the forwarded header fails that
// call alone (RESOURCE_EXHAUSTED / 431), unpublished, whether figway's own
// limit refuses it or, with the limits raised past it, the broker's
// negotiated frame_max does; over max_header_bytes the ingress refuses the
// headers themselves. No ordinary call fails and figway never reconnects.
//
// The worker's side is checked on the same broker: see workerTrimsReply.
func TestHostileHeadersFailAlone(t *testing.T) {
	url := rabbitmq.ForTest(t).NewVHost(t)
	w := figway.StartWorker(t, url, nil)
	for _, tc := range []struct {
		name      string
		server    string
		maxHeader int
		maxValue  int // of a forwarded header, before frame_max
	}{
		{"default limits", "", 64 << 10, 8 << 10},
		{"limits raised past frame_max", ", max_header_bytes: 1048576, max_forwarded_value_bytes: 1048576, max_forwarded_bytes: 1048576", 1 << 20, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := figway.NewAddrs(t)
			path := figway.WriteRoutes(t, "", a, url, map[string]string{"SERVER": tc.server})
			appendFile(t, path, "defaults: {forward_headers: [x-tenant-id]}\n")
			figway.Serve(t, path, a, true)
			// The worker consumes once figway has declared its queue, after
			// a retry that can take longer than warmUp waits.
			fault.WaitConsuming(t, w)
			orders := ordersv1.NewOrderServiceClient(figway.Dial(t, a.GRPC))
			figway.WarmUp(t, orders)

			stop := make(chan struct{})
			wait := ordinaryCallers(orders, a.HTTP, 10, stop)
			const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			for range 5 {
				for _, size := range []int{40 << 10, 200 << 10} {
					huge := strings.Repeat("a", size)
					// Over server.max_header_bytes the ingress refuses the
					// headers themselves, before any call.
					transport := size > tc.maxHeader
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, err := orders.GetOrder(figway.WithMetadata(ctx, "traceparent", traceparent, "tracestate", "v="+huge),
						&ordersv1.GetOrderRequest{OrderId: "t-1"})
					if transport != (err != nil) || status.Code(err) == codes.DeadlineExceeded {
						t.Errorf("gRPC with a %d KB tracestate = %v; want OK (truncated) under max_header_bytes, refused at once over it", size>>10, err)
					}
					// A forwarded value over its limit, or one that would
					// take the message's headers past frame_max (128 KiB).
					tooLarge := size > tc.maxValue || size > 128<<10
					_, err = orders.GetOrder(figway.WithMetadata(ctx, "x-tenant-id", huge), &ordersv1.GetOrderRequest{OrderId: "t-2"})
					switch code := status.Code(err); {
					case transport && (err == nil || code == codes.DeadlineExceeded),
						!transport && tooLarge && code != codes.ResourceExhausted,
						!transport && !tooLarge && err != nil:
						t.Errorf("gRPC with a %d KB x-tenant-id = %v; want ResourceExhausted past the limits, OK within, refused at once over max_header_bytes", size>>10, err)
					}
					cancel()
					want := http.StatusOK
					if transport {
						want = http.StatusRequestHeaderFieldsTooLarge
					}
					if code := restGet(t, a.HTTP, "/v1/orders/t-3", "traceparent", traceparent, "tracestate", "v="+huge); code != want {
						t.Errorf("REST with a %d KB tracestate = %d; want %d", size>>10, code, want)
					}
					if !transport && !tooLarge {
						want = http.StatusOK
					} else {
						want = http.StatusRequestHeaderFieldsTooLarge
					}
					if code := restGet(t, a.HTTP, "/v1/orders/t-4", "x-tenant-id", huge); code != want {
						t.Errorf("REST with a %d KB x-tenant-id = %d; want %d", size>>10, code, want)
					}
				}
				time.Sleep(100 * time.Millisecond) // spread over the callers' run
			}
			if tc.server == "" {
				// While the ordinary callers run: their calls share the
				// worker's connection with the oversized replies.
				workerTrimsReply(t, orders, a)
			}
			close(stop)
			ok, fails := wait()
			if len(fails) > 0 {
				t.Errorf("%d of %d ordinary calls failed, e.g. %s", len(fails), ok+len(fails), fails[0])
			}
			if ok == 0 {
				t.Error("no ordinary call ran")
			}
			scrape := prom.Get(t, "http://"+a.Admin+"/metrics")
			if n := scrape.Value("figway_broker_reconnects_total"); n != 0 {
				t.Errorf("figway_broker_reconnects_total = %v; want 0", n)
			}
			t.Logf("%d ordinary calls served during the attacks", ok)
		})
	}
	if n := w.Stats().Connects; n != 1 {
		t.Errorf("worker connected %d times; want 1", n)
	}
}

// workerTrimsReply: a worker answering NOT_FOUND with a 140 KB message, or
// setting 140 KB of reply metadata, once had its connection closed by the
// broker on every reply, redelivering other callers' requests. Now the
// message is trimmed to fit frame_max and the caller gets NOT_FOUND with
// it; the metadata, which cannot be trimmed without changing the answer,
// fails that call alone with INTERNAL saying why (gRPC; 500 over REST). The
// worker's connection stays up (the caller checks that it connected once).
// It runs while ordinary callers do, so it must not end the test early.
func workerTrimsReply(t *testing.T, orders ordersv1.OrderServiceClient, a figway.Addrs) {
	const why = "the worker's reply headers do not fit the broker's frame_max"
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "huge-message"})
		st := status.Convert(err)
		if st.Code() != codes.NotFound || !strings.HasPrefix(st.Message(), "no order xxx") || !strings.Contains(st.Message(), "truncated") {
			t.Errorf("GetOrder(huge-message) = %v %.40q…; want NotFound with the message trimmed", st.Code(), st.Message())
		}
		var header metadata.MD
		_, err = orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "huge-metadata"}, grpc.Header(&header))
		cancel()
		if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != why || len(header.Get("x-big")) != 0 {
			t.Errorf("GetOrder(huge-metadata) = %v %.80q, %d x-big headers; want Internal %q, no metadata", st.Code(), st.Message(), len(header.Get("x-big")), why)
		}
	}
	if code := restGet(t, a.HTTP, "/v1/orders/huge-message"); code != http.StatusNotFound {
		t.Errorf("REST GetOrder(huge-message) = %d; want 404", code)
	}
	if code, body := figway.HTTPGet("http://" + a.HTTP + "/v1/orders/huge-metadata"); code != http.StatusInternalServerError || !strings.Contains(body, why) {
		t.Errorf("REST GetOrder(huge-metadata) = %d %.200q; want 500 saying %q", code, body, why)
	}
	if n := prom.Get(t, "http://"+a.Admin+"/metrics").Value("figway_broker_reconnects_total"); n != 0 {
		t.Errorf("figway_broker_reconnects_total = %v after oversized replies; want 0", n)
	}
}

// restGet GETs path on addr with headers (name, value pairs) and returns
// the status code.
func restGet(t *testing.T, addr, path string, headers ...string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Errorf("GET %s: %v", path, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}
