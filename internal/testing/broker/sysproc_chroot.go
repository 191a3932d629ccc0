//go:build unix

package broker

import "syscall"

// chrootAttr runs a command chrooted in root, or as it is for "".
func chrootAttr(root string) *syscall.SysProcAttr {
	if root == "" {
		return nil
	}
	return &syscall.SysProcAttr{Chroot: root}
}
