// Package legacy is figway's passthrough to the legacy service: calls that
// no route migrates (or that a route sends back with `to: legacy`) go to
// the upstream untouched.
//
// [GRPC] proxies gRPC calls as raw frames — unary and streaming, with
// metadata, deadline, headers, trailers and status preserved, over one
// long-lived client connection. [NewHTTP] is a net/http/httputil reverse
// proxy to the legacy REST service.
package legacy
