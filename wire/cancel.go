package wire

// The cancel back channel (docs/wire-protocol.md, "Cancellation"): when
// the caller of an rpc call or a stream goes away before its answer, figway
// publishes a cancel message to CancelExchange, a durable direct exchange,
// with the request's method (its type property) as routing key and the
// request's correlation_id. A worker that binds a queue of its own with the
// keys of its methods learns of it and may stop working for that request;
// one that does not still works.
const (
	CancelExchange     = "figway.cancel"
	CancelExchangeType = "direct"
	// CancelType is the type property of a cancel message.
	CancelType = "figway.cancel"
)
