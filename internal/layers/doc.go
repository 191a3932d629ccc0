// Package layers holds no code: its test checks, with go list, that no
// package of figway imports one drawn above it in docs/architecture.md —
// the core (gateway, wire, resilience) knows neither the routes file's
// format nor RabbitMQ's client library, no adapter reaches back into
// config, metrics or the wiring, and no production package links the
// tests' machinery (internal/testing); that the import diagram of
// docs/architecture.md draws what each package imports, no more and no
// less; that the functions of its production packages (those the
// diagram draws, the call's path and internal/app among them), examples
// and benchmark are at most 60 lines long; and that no comment or doc
// cites a file that is not in the repository.
package layers
