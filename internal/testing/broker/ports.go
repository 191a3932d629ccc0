package broker

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

const (
	// lowestPort is the lowest port FreePort picks: below it lie the
	// ports services are configured on (RabbitMQ's 5672, epmd's 4369,
	// figway's demo ports).
	lowestPort = 10000
	// minPortRoom is how many ports a range below or above the ephemeral
	// range must hold for FreePort to pick from it.
	minPortRoom = 1000
	// portTries bounds how many candidates FreePort tries.
	portTries = 200
)

// ephemeralRangeFile is where Linux keeps the range it takes the local
// ports of outgoing connections (and of listeners on port 0) from.
const ephemeralRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// handedOut holds every port FreePort returned in this process, so that
// nodes started in parallel never get the same one.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreePort returns a TCP port for a node, or any process the test starts,
// to listen on 127.0.0.1. The port is chosen at random outside the
// kernel's ephemeral port range, is free on 127.0.0.1 and on the IPv4
// wildcard address (RabbitMQ checks the latter before it binds its
// distribution port), is none of RabbitMQ's default ports, and was not
// returned before by this process.
//
// Why not let the kernel choose (listen on port 0, close, hand the port
// over)? Until the other process binds the port, the kernel may give it to
// any outgoing connection on the machine as its local port, and the
// process then fails to start. The kernel takes those ports from the
// ephemeral range only, so a port outside it is taken only by a process
// that asks for it by number: one that chose it the same way, which
// [Start] survives by retrying on new ports.
//
// The range comes from /proc/sys/net/ipv4/ip_local_port_range (where that
// cannot be read, the IANA range 49152–65535 that BSD, macOS and Windows
// use). FreePort picks from 10000 up to just below it, or from just above
// it to 65535 when there are not 1000 ports below; if neither side has
// that many, it falls back to a port the kernel chooses.
func FreePort() (int, error) {
	lo, hi, ok := pickRange(ephemeralRange())
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for range portTries {
		port := 0
		if ok {
			port = lo + rand.IntN(hi-lo+1)
		} else {
			var err error
			if port, err = kernelPort(); err != nil {
				return 0, fmt.Errorf("rabbitmqtest: free port: %w", err)
			}
		}
		if rabbitPort(port) || handedOut.ports[port] || !portFree(port) {
			continue
		}
		handedOut.ports[port] = true
		return port, nil
	}
	if !ok {
		return 0, fmt.Errorf("rabbitmqtest: no free port after %d tries", portTries)
	}
	return 0, fmt.Errorf("rabbitmqtest: no free port in %d–%d after %d tries", lo, hi, portTries)
}

// ephemeralRange returns the kernel's ephemeral port range.
func ephemeralRange() (lo, hi int) {
	if b, err := os.ReadFile(ephemeralRangeFile); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			l, errL := strconv.Atoi(f[0])
			h, errH := strconv.Atoi(f[1])
			if errL == nil && errH == nil && 0 < l && l <= h && h <= 65535 {
				return l, h
			}
		}
	}
	return 49152, 65535
}

// pickRange returns the ports FreePort picks from, given the ephemeral
// range ephLo–ephHi: lowestPort up to just below it if that holds
// minPortRoom ports, else just above it up to 65535 if that does; ok is
// false if neither does.
func pickRange(ephLo, ephHi int) (lo, hi int, ok bool) {
	if ephLo-lowestPort >= minPortRoom {
		return lowestPort, ephLo - 1, true
	}
	lo = max(ephHi+1, lowestPort)
	if 65535-lo+1 >= minPortRoom {
		return lo, 65535, true
	}
	return 0, 0, false
}

// rabbitPort reports whether port is one of RabbitMQ's defaults: AMQP,
// management, Erlang distribution, and the range rabbitmqctl's own
// distribution listener takes. A broker of the machine, or the demo's,
// may be using or about to use them.
func rabbitPort(port int) bool {
	return port == 5672 || port == 15672 || port == 25672 || (port >= 35672 && port <= 35682)
}

// portFree reports whether port can be bound on 127.0.0.1 (where a node
// listens for AMQP and Erlang distribution) and on the IPv4 wildcard
// address (what RabbitMQ binds to check that its distribution port is
// free). Binding the wildcard fails too if any socket of the machine is
// bound to the port, listening or connected.
func portFree(port int) bool {
	for _, host := range []string{"127.0.0.1", "0.0.0.0"} {
		l, err := net.Listen("tcp4", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// kernelPort returns a port the kernel chose, from its ephemeral range.
func kernelPort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
