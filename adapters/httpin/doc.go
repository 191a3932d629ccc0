// Package httpin is figway's REST/JSON ingress: it serves the
// google.api.http rules of the methods a route table sends to the broker
// (canary and fallback routes included) or shadows,
// read from the descriptor set loaded at run time — no generated gateway
// code, the way Envoy's gRPC-JSON transcoder works — on grpc-gateway's
// runtime.
//
// # Requests
//
// Each rule, and each of its additional_bindings, becomes a path template
// on a [runtime.ServeMux] ([runtime.ServeMux.HandlePath]). A request that
// matches is decoded into the method's request message, a dynamicpb
// message: the JSON body (body "*" or body "field") with protojson, then
// the path variables, then the query parameters for every field that
// neither sets ([runtime.PopulateQueryParameters]). The message is encoded
// in the route's encoding, protobuf or JSON, and handed with the
// binding's route, taken when the route table was built, to
// [gateway.Gateway.InvokeRoute] — the dispatch path of the gRPC ingress,
// with the same route table, bulkheads and deadlines.
//
// A Grpc-Timeout header sets the call's deadline. Headers reach the
// message only through the route's forward_headers. When the gateway sends
// a call to the legacy gRPC service instead (canary, fallback, shadow), the
// service gets the metadata grpc-gateway would give it
// ([runtime.AnnotateIncomingContext]).
//
// # Answers
//
// The reply, or its response_body field, is rendered with protojson
// through grpc-gateway's JSONPb marshaler. An event route answers 202
// Accepted with the Figway-Event-Id header. Errors are google.rpc.Status
// JSON from grpc-gateway's error handler, with the HTTP status of
// runtime.HTTPStatusFromCode, except 413 for a request over the size limit
// and 502 for a reply that does not decode (docs/errors.md).
//
// # Reload
//
// [Server.SetTable] builds the bindings of a new route table and swaps
// them in atomically: a request runs to its end on the bindings it
// started with.
package httpin
