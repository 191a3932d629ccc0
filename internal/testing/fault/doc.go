// Package fault holds what fault tests share: a [Worker] that survives
// broker faults, and a direct reply-to address whose channel is gone.
package fault
