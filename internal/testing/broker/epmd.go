package broker

import (
	"os/exec"
	"sync"
)

// epmdOnce starts the machine's epmd once per process.
var epmdOnce sync.Once

// startHostEPMD starts the machine's epmd, if it has one and none runs yet,
// before a node starts in RabbitMQ 4.0's root. Every Erlang node of the
// machine registers with the one epmd on port 4369, whichever Erlang it
// came from. Left to itself, the first chrooted node would start the
// root's epmd, a daemon that outlives the node and keeps the root busy
// (scripts/rabbitmq.sh cleanup refuses to unmount a root a process runs
// in). `epmd -daemon` returns at once, and the daemon exits by itself if
// another epmd holds the port.
func startHostEPMD() {
	epmdOnce.Do(func() {
		if p, err := exec.LookPath("epmd"); err == nil {
			_ = exec.Command(p, "-daemon").Run()
		}
	})
}
