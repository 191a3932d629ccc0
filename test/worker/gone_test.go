package worker_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/wire"
	"github.com/figway/figway/wire/amqpwire"
)

// TestReplyToGoneIsDropped: a request whose direct reply-to address names
// a channel the broker cannot find — as when the node of the figway that
// sent it died — makes RabbitMQ 3.10 close the replying worker's
// connection (541 INTERNAL_ERROR), and the request comes back. The worker
// replies to the redelivered request alone, learns that the address is
// gone, and acks the request without a reply when it comes again, instead
// of crashing on it until it expires; it goes on serving.
func TestReplyToGoneIsDropped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := newCaller(t, f.url)

	r := request(t, echoMethod, wrapperspb.String("to a caller whose node died"))
	r.CorrelationID, r.ReplyTo = wire.NewID(), fault.GoneReplyTo(t, f.url)
	c.publishRaw("", testQueue, amqpwire.Publishing(&r, time.Now()))

	poll.Until(t, waitFor, "the request acked without its reply", func() bool { return f.w.Stats().RepliesDropped == 1 })
	if d := c.call(testQueue, request(t, echoMethod, wrapperspb.String("next"))); d.Headers[wire.HeaderStatus] != nil {
		t.Fatalf("next call failed: %v", d.Headers)
	}
	st := f.w.Stats()
	t.Logf("worker: %d connects, %d received, %d replies dropped, %d replied", st.Connects, st.Received, st.RepliesDropped, st.Replied)
	// One crash on the first delivery, one on the reply sent alone; then
	// the request is dropped: the worker does not crash on it again.
	if st.Connects > 3 {
		t.Errorf("worker connected %d times; want at most 3", st.Connects)
	}
	time.Sleep(500 * time.Millisecond)
	if again := f.w.Stats(); again.Connects != st.Connects || again.RepliesDropped != 1 {
		t.Errorf("after the drop: %+v; want no further connects or drops", again)
	}
}
