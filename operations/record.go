package operations

import (
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
)

// Kind says what a Record records.
type Kind uint8

const (
	// Started: a call became an operation.
	Started Kind = iota + 1
	// Done: the operation has its outcome, in Record.Result.
	Done
	// Deleted: the operation was deleted; a reply that comes later is
	// dropped.
	Deleted
)

func (k Kind) String() string {
	switch k {
	case Started:
		return "started"
	case Done:
		return "done"
	case Deleted:
		return "deleted"
	}
	return "unknown"
}

// Record is one entry of the log. Every kind carries the operation's
// description, so that a Store that reads a done or deleted record without
// the started one (it fell out of the log's retention) knows the operation
// all the same.
type Record struct {
	Kind Kind
	// ID is the operation's id: 32 lowercase hex characters, 128 random
	// bits.
	ID string
	// Method is the full method name of the call.
	Method string
	// OwnerBy is the request header that owns the operation, or "".
	OwnerBy string
	// Owner is the keyed hash of the owner's header value ([Store.Owner]),
	// or "" when the operation has no owner.
	Owner string
	// Start is when the call was received; Deadline, when it gives up
	// waiting for the reply.
	Start, Deadline time.Time
	// Keep is how long the operation is kept once done.
	Keep time.Duration
	// At is when the record was appended.
	At time.Time
	// Result is the outcome of a Done record.
	Result *Result
}

// Result is the outcome of an operation: the reply, or the error a
// synchronous caller would have got.
type Result struct {
	// Body is the reply message, in ContentType (the route's encoding on
	// the wire), when Status is nil.
	Body        []byte
	ContentType string
	// Status is the error, or nil for a reply.
	Status *spb.Status
	// Header and Trailer are the reply's metadata (lower-case keys), if
	// any: the worker's response headers and trailers (docs/wire-protocol.md,
	// figway-rmd-* and figway-rmt-*), or those of a worker's error.
	Header, Trailer map[string][]string
	// HTTPStatus is the HTTP status a REST caller would have got, or 0
	// for the default.
	HTTPStatus int
}

// size estimates the memory an operation holds.
func (r *Record) size() int64 {
	n := int64(len(r.ID) + len(r.Method) + len(r.OwnerBy) + len(r.Owner) + entryOverhead)
	if res := r.Result; res != nil {
		n += int64(len(res.Body) + len(res.ContentType))
		if res.Status != nil {
			n += int64(len(res.Status.GetMessage()) + 32)
			for _, d := range res.Status.GetDetails() {
				n += int64(len(d.GetTypeUrl()) + len(d.GetValue()) + 32)
			}
		}
		for _, md := range []map[string][]string{res.Header, res.Trailer} {
			for k, vs := range md {
				n += int64(len(k))
				for _, v := range vs {
					n += int64(len(v) + 16)
				}
			}
		}
	}
	return n
}

// entryOverhead is what an operation costs beside its strings and reply:
// the map entry, the entry and its channel, the times.
const entryOverhead = 320
