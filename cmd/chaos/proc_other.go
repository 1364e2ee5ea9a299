//go:build !linux

package main

import "syscall"

// childProcAttr: outside Linux there is no parent-death signal; the
// command stops its servers on every ordinary exit path.
func childProcAttr() *syscall.SysProcAttr { return nil }
