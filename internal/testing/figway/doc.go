// Package figway runs a whole figway for end-to-end tests, as the tests
// under test/ need it: in-process ([Serve], internal/app's App) or as a
// `figway serve` process ([Start]), on free loopback addresses, with the
// routes file of the operations tests ([WriteRoutes]) and a Go SDK worker
// that serves it ([StartWorker]); and what those tests do to it: REST
// requests ([Do]), gRPC clients ([Dial]), load ([StartLoad]).
package figway
