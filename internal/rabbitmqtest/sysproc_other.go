//go:build !unix

package rabbitmqtest

import "syscall"

func sysProcAttr(string) *syscall.SysProcAttr { return nil }

func chrootAttr(string) *syscall.SysProcAttr { return nil }
