package server

import "syscall"

// yieldCore gives the thread's core to another runnable thread, if any
// (sched_yield(2)); runtime.Gosched would only switch goroutines on this
// thread, and the poller is on another.
func yieldCore() { _, _, _ = syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
