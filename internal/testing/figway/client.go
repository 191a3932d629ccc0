package figway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/poll"
)

// Get returns the status of GET url, or 0 if the request failed.
func Get(t testing.TB, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// WaitHTTP waits until GET url answers want.
func WaitHTTP(t testing.TB, url string, want int, within time.Duration) {
	t.Helper()
	poll.Until(t, within, fmt.Sprintf("GET %s answering %d", url, want), func() bool { return Get(t, url) == want })
}

// HTTPGet returns the status and body of GET url; a failed request gives
// 0 and its error.
func HTTPGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// WithMetadata returns ctx with the outgoing gRPC metadata kv added.
func WithMetadata(ctx context.Context, kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// Dial is a plaintext gRPC client of addr, closed when the test ends.
func Dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// ListServices asks conn's server for its services with a real
// grpc.reflection.v1 client.
func ListServices(t testing.TB, conn *grpc.ClientConn) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.CloseSend()
	rc.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}})
	res, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range res.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	return names
}

// WarmUp waits for a first GetOrder to be answered: the worker, started
// before the queue existed (it is figway's topology), may still be waiting
// out its reconnect backoff.
func WarmUp(t testing.TB, orders ordersv1.OrderServiceClient) {
	t.Helper()
	took := poll.Until(t, 10*time.Second, "a first GetOrder answered", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: "warm-up"})
		return err == nil
	})
	t.Logf("first call answered after %v", took.Round(time.Millisecond))
}

// RSS is a process's resident set size, in KiB.
func RSS(t testing.TB, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

// RecvIDs reads a stream of order events to its end and returns their
// order ids, in order, with the error that ended it (nil at io.EOF).
func RecvIDs(s grpc.ServerStreamingClient[ordersv1.OrderEvent]) ([]string, error) {
	var ids []string
	for {
		ev, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return ids, nil
		}
		if err != nil {
			return ids, err
		}
		ids = append(ids, ev.GetOrderId())
	}
}
