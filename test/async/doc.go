// Package async holds end-to-end tests of async routes (docs/rest.md,
// "Long calls"): operations taken by one figway and read, waited for and
// deleted on another over a shared stream, their reply metadata, and what
// async costs a fast call.
package async
