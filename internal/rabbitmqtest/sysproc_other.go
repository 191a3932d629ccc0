//go:build !unix

package rabbitmqtest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
