// Package auth checks the bearer tokens of figway's callers: JSON Web
// Tokens signed with keys from a JSON Web Key Set, read from a file or
// fetched from a URL, kept and refreshed (docs/operations.md,
// "Authentication and rate limits").
//
// # Libraries
//
// Tokens are parsed and their claims validated by
// github.com/golang-jwt/jwt/v5, and key sets are parsed by
// github.com/MicahParks/keyfunc/v3 (over github.com/MicahParks/jwkset),
// whose key function also checks a key's alg and use against the token.
// figway fetches and refreshes the key sets itself, not with keyfunc's
// HTTP storage: it bounds each fetch (time, bytes, keys), keeps the last
// good keys when a fetch fails, rate-limits the refreshes an unknown kid
// asks for, and reports each set's state as metrics, none of which that
// storage lets a caller see or bound.
//
// # Ownership
//
// A [Keys] holds every key set that the routes name, by source, across
// reloads; its Run refreshes them and returns once every fetch it started
// has ended. A [Verifier] is one route's check, built by [Keys.Verifier].
package auth
