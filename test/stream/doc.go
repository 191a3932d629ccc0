// Package stream holds end-to-end tests of server-streaming routes to the
// broker (docs/wire-protocol.md, "Streaming replies") against `figway
// serve` as a process of its own: many long streams at once over REST, a
// worker killed -9 in the middle of its streams, and callers that read
// slower than the worker sends, with figway's memory measured.
package stream
