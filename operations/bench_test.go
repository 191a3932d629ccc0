package operations

import (
	"context"
	"testing"
	"time"
)

// BenchmarkAsyncWrap is what an async route adds to a call answered
// within async.after: the call on a goroutine of the Store, a timer for
// after, and the hand-over of its result (httpin's invokeAsync), against
// the same call made directly. Run: go test -bench AsyncWrap ./operations
func BenchmarkAsyncWrap(b *testing.B) {
	s := New(Config{Log: &memLog{}})
	ctx := context.Background()
	call := func(context.Context) int { return 1 }
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			n += call(ctx)
		}
	})
	b.Run("async", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			done := make(chan int, 1)
			s.Go(ctx, func(ctx context.Context) { done <- call(ctx) })
			t := time.NewTimer(2 * time.Second)
			select {
			case v := <-done:
				n += v
			case <-t.C:
			}
			t.Stop()
		}
	})
}
