//go:build !unix

package broker

import "syscall"

func sysProcAttr(string) *syscall.SysProcAttr { return nil }

func chrootAttr(string) *syscall.SysProcAttr { return nil }
