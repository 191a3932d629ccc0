package httpin

import (
	"context"
	"testing"
	"time"
)

// TestWaitSync: Prefer: respond-async gets its 202 even when the call has
// already finished; without it, a call that finished within after is
// answered synchronously, and a caller that left is told apart.
func TestWaitSync(t *testing.T) {
	finished := make(chan struct{})
	close(finished)
	for i := range 200 {
		if got := waitSync(context.Background(), finished, 0, true); got != syncAccepted {
			t.Fatalf("respond-async, call finished (try %d): %d; want syncAccepted", i, got)
		}
	}
	if got := waitSync(context.Background(), finished, time.Hour, false); got != syncFinished {
		t.Errorf("call finished within after: %d; want syncFinished", got)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if got := waitSync(gone, make(chan struct{}), time.Hour, false); got != syncLeft {
		t.Errorf("caller left: %d; want syncLeft", got)
	}
	if got := waitSync(context.Background(), make(chan struct{}), time.Millisecond, false); got != syncAccepted {
		t.Errorf("call outlived after: %d; want syncAccepted", got)
	}
}
