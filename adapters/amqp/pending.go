package amqp

import "sync"

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
