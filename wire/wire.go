// Package wire defines figway's message protocol on RabbitMQ: the AMQP
// properties and headers of a request and of its reply, as specified in
// docs/wire-protocol.md. Both ends of the bridge use it: the
// gateway's AMQP adapter to publish requests and read replies, and the worker
// SDK to read requests and publish replies. Any other language can implement
// the same from the document alone.
package wire

// Content types of request and reply bodies.
const (
	ContentTypeProtobuf = "application/protobuf"
	ContentTypeJSON     = "application/json"
)

// AppID is the app_id property of every message figway publishes.
const AppID = "figway"

// DirectReplyTo is RabbitMQ's pseudo-queue for direct reply-to.
const DirectReplyTo = "amq.rabbitmq.reply-to"

// Header names.
const (
	// HeaderStatus carries the gRPC status code of a reply, as an integer.
	// Absent or 0 means OK.
	HeaderStatus = "figway-status"
	// HeaderMessage carries the error message of a reply whose status is not OK.
	HeaderMessage = "figway-message"
	// HeaderDetails optionally carries a serialized google.rpc.Status.
	HeaderDetails = "figway-details"
	// HeaderDeadline carries the call's absolute deadline (rpc only), in
	// [TimeLayout].
	HeaderDeadline = "figway-deadline"
	// HeaderMetadataPrefix prefixes forwarded gRPC metadata and HTTP headers.
	HeaderMetadataPrefix = "figway-md-"
	// HeaderReplyMetadataPrefix prefixes a reply's response header
	// metadata, and HeaderReplyTrailerPrefix its trailer metadata.
	HeaderReplyMetadataPrefix = "figway-rmd-"
	HeaderReplyTrailerPrefix  = "figway-rmt-"
	// HeaderHTTPStatus carries the HTTP status, 200–299, that a reply
	// gives REST callers.
	HeaderHTTPStatus = "figway-http-status"
	// HeaderShadow is 1 on a shadow copy of a call: legacy answered the
	// caller, and the reply (if any) only feeds a comparison.
	HeaderShadow = "figway-shadow"

	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"

	// CloudEvents 1.0 AMQP binding, binary content mode: on events, and on
	// rpc requests of routes with wire: {cloudevents: always}.
	HeaderCESpecVersion = "cloudEvents:specversion"
	HeaderCEID          = "cloudEvents:id"
	HeaderCESource      = "cloudEvents:source"
	HeaderCEType        = "cloudEvents:type"
	HeaderCETime        = "cloudEvents:time"
)

// CloudEventsSpecVersion is the value of the cloudEvents:specversion header.
const CloudEventsSpecVersion = "1.0"

// TimeLayout formats the figway-deadline header and cloudEvents:time: RFC
// 3339 with exactly nine fraction digits, in UTC (see [FormatTime]). Go's
// RFC3339Nano drops trailing zeros, which would make the width vary.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Delivery modes of requests: events are persistent, rpc requests are not.
const (
	Transient  uint8 = 1
	Persistent uint8 = 2
)
