//go:build !unix

package rabbitmq

import "syscall"

func sysProcAttr(string) *syscall.SysProcAttr { return nil }

func chrootAttr(string) *syscall.SysProcAttr { return nil }
