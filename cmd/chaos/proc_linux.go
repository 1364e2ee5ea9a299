package main

import "syscall"

// childProcAttr makes the kernel kill a server child when the command dies,
// even by SIGKILL or a test timeout, so no server outlives its run.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
