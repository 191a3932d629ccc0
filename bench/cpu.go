package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procs are the processes whose CPU time the bench charges to each call:
// figway, the broker, the service process (SDK workers and raw
// responders: service.go), and everything else on the path (this process
// — load generator, in-process servers and workers — and the echo
// server's).
type procs struct {
	figway, broker, worker, echo int // pids; 0 while not running
}

// cpuTime is CPU time in clock ticks (user + system) of figway, the
// broker, the service process and the rest.
type cpuTime struct{ figway, broker, worker, other int64 }

func (p *procs) now() cpuTime {
	return cpuTime{
		figway: ticks(p.figway),
		broker: ticks(p.broker),
		worker: ticks(p.worker),
		other:  ticks(os.Getpid()) + ticks(p.echo),
	}
}

// clockTick is the kernel's USER_HZ, the unit of /proc/<pid>/stat times:
// 100 on every Linux architecture Go runs on.
const clockTick = 100

// perCall returns the CPU µs per call between a and b.
func (b cpuTime) perCall(a cpuTime, calls int) cpuUse {
	if calls == 0 {
		return cpuUse{}
	}
	us := func(t int64) float64 { return float64(t) * 1e6 / clockTick / float64(calls) }
	return cpuUse{figway: us(b.figway - a.figway), broker: us(b.broker - a.broker),
		worker: us(b.worker - a.worker), other: us(b.other - a.other)}
}

// cpuUse is CPU µs per call, by process.
type cpuUse struct{ figway, broker, worker, other float64 }

func (c cpuUse) total() float64 { return c.figway + c.broker + c.worker + c.other }

// ticks reads the CPU time of pid from /proc; 0 if pid is 0 or gone.
func ticks(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing parenthesis (proc(5): utime is field 14,
	// stime 15).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}
