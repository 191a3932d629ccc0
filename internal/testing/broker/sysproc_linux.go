package broker

import "syscall"

// sysProcAttr puts the VM in a process group of its own, so a Ctrl-C meant
// for the test run does not reach it directly, and has the kernel SIGKILL it
// when the test binary dies, however it dies (see launch for the thread
// that must stay alive for this). A root other than "" chroots it there.
func sysProcAttr(root string) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Chroot: root}
}
