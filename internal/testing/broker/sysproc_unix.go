//go:build unix && !linux

package broker

import "syscall"

// sysProcAttr puts the VM in a process group of its own. Outside Linux there
// is no parent-death signal: a test binary that crashes leaves its nodes
// running. A root other than "" chroots it there.
func sysProcAttr(root string) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Chroot: root}
}
