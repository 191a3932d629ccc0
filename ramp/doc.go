// Package ramp moves ramped routes from legacy to the broker step by step
// while their gates hold, and back when they break (docs/migration.md,
// "Ramps").
//
// # Where a ramp's state lives
//
// Every figway serving a ramped route keeps a [Controller]. The state of
// each ramp — its step and since when, paused or not and why — and each
// figway's figures for the step are [Record]s on a [Log], a RabbitMQ
// stream that every figway appends to and reads back whole
// (adapters/amqp). A Controller's state is the fold of the records in the
// stream's order, so every figway that has read the same records holds
// the same state.
//
// # One step per interval
//
// A change of state names the epoch it moves to: the current epoch plus
// one. The fold takes the first record of each epoch and ignores the
// others, so when two figways judge the same step at once and both
// append a step, one step is taken.
//
// # Gates
//
// Each figway counts the calls of its ramped routes since the step began
// (calls and failures on the broker side, latencies on both sides,
// compared shadow copies) and appends its figures to the log a few times
// per step. A gate is judged on the sum of every figway's latest figures
// for the step.
package ramp
