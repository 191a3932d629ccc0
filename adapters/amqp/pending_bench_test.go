package amqp

import (
	"testing"

	"github.com/figway/figway/wire"
)

// BenchmarkPending is the correlation bookkeeping of one rpc call: register,
// take on reply, remove on return — in parallel, as calls run.
func BenchmarkPending(b *testing.B) {
	p := newPending()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		id := wire.NewID()
		c := &call{}
		for pb.Next() {
			p.add(id, c)
			if p.take(id) != c {
				b.Fatal("lost the call")
			}
			p.remove(id)
		}
	})
}
