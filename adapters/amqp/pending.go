package amqp

import (
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// call is one publish on a lane: an rpc request waiting for its reply, or an
// event waiting for its confirm.
type call struct {
	exchange, key string
	pub           func() amqp.Publishing // renders the message at publish time
	event         bool
	msgID         string
	corrID        string
	sentAt        time.Time // owner-local: when the lane wrote the publish

	done      chan outcome // buffered 1; written once by resolve
	resolved  atomic.Bool
	published atomic.Bool // set by the lane once the publish is written
	returned  bool        // owner-local: a basic.return came for this event
}

// outcome ends a call: a reply, or an error. It holds the parts of the
// reply delivery the gateway reads, not the delivery: a copy of those
// costs no allocation per reply.
type outcome struct {
	body        []byte
	contentType string
	headers     amqp.Table
	err         error
}

// resolve ends c with o. Only the first outcome counts: a reply racing a
// return, or a confirm racing a channel close, cannot end a call twice.
func (c *call) resolve(o outcome) {
	if c.resolved.CompareAndSwap(false, true) {
		c.done <- o
	}
}

// pending maps correlation ids to the rpc calls waiting for their reply.
// Callers add and remove their own entry; whoever consumes replies takes
// entries out. Sharded so that lanes and callers on many cores do not queue
// on one lock.
type pending struct {
	shards [16]struct {
		sync.Mutex
		m map[string]*call
	}
}

func newPending() *pending {
	p := &pending{}
	for i := range p.shards {
		p.shards[i].m = make(map[string]*call)
	}
	return p
}

func (p *pending) shard(id string) int {
	if id == "" {
		return 0
	}
	// Correlation ids are random hex: any character spreads them evenly.
	return int(id[len(id)-1]) & (len(p.shards) - 1)
}

func (p *pending) add(id string, c *call) {
	s := &p.shards[p.shard(id)]
	s.Lock()
	s.m[id] = c
	s.Unlock()
}

// remove drops id, if still there.
func (p *pending) remove(id string) {
	s := &p.shards[p.shard(id)]
	s.Lock()
	delete(s.m, id)
	s.Unlock()
}

// take removes and returns the call registered under id, or nil.
func (p *pending) take(id string) *call {
	s := &p.shards[p.shard(id)]
	s.Lock()
	c := s.m[id]
	delete(s.m, id)
	s.Unlock()
	return c
}

// len returns the number of calls waiting.
func (p *pending) len() int {
	n := 0
	for i := range p.shards {
		s := &p.shards[i]
		s.Lock()
		n += len(s.m)
		s.Unlock()
	}
	return n
}
