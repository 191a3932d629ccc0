package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
)

type holdResult struct {
	calls, ok  int
	hold, took time.Duration
	rss        int64
	goroutines int
	stack      float64 // figway's goroutine stacks while holding, bytes (go_memstats_stack_inuse_bytes)
	firstErr   error
}

// holdCalls starts n concurrent calls that the worker answers after hold,
// and measures figway while it holds them all.
func holdCalls(fw *figwayProc, n int, hold time.Duration) holdResult {
	const conns = 8
	var clients []ordersv1.OrderServiceClient
	for range conns {
		c, err := dialGRPC(fw.grpc)
		if err != nil {
			return holdResult{calls: n, firstErr: err}
		}
		defer func(c *grpc.ClientConn) { c.Close() }(c)
		clients = append(clients, ordersv1.NewOrderServiceClient(c))
	}
	ctx, cancel := context.WithTimeout(context.Background(), hold+30*time.Second)
	defer cancel()
	var (
		ok    atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			if _, err := clients[i%conns].ListOrders(ctx, &ordersv1.ListOrdersRequest{}); err != nil {
				errMu.Lock()
				if first == nil {
					first = err
				}
				errMu.Unlock()
				return
			}
			ok.Add(1)
		})
	}
	time.Sleep(hold * 3 / 4) // all calls are waiting on the worker now
	goroutines := fw.goroutines()
	stack := fw.metric("go_memstats_stack_inuse_bytes")
	wg.Wait()
	return holdResult{
		calls: n, ok: int(ok.Load()), hold: hold, took: time.Since(start),
		rss: fw.peakRSS(), goroutines: goroutines, stack: stack, firstErr: first,
	}
}
