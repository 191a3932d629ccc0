// Package migration holds end-to-end tests of the strangler-fig settings
// with a legacy service and a worker behind a served figway: pinned
// canaries, shadow samples, reply metadata on both ingresses, and the
// migration status page read in a real headless browser.
package migration
