//go:build !linux

package server

import "runtime"

// yieldCore lets other goroutines run; the flusher's yield to a poller on
// the same core is a Linux system call (yield_linux.go).
func yieldCore() { runtime.Gosched() }
