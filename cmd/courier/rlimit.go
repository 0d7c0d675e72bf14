package main

import (
	"log/slog"
	"syscall"
)

// raiseFileLimit lifts the open-file limit so that --max-conns connections
// fit (each is a file descriptor), as far as the system lets this process:
// past the hard limit only with privilege. It logs what it got.
func raiseFileLimit(maxConns int, log *slog.Logger) {
	want := uint64(maxConns) + 1024 // listeners, the store, pprof, slack
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur >= want {
		return
	}
	next := syscall.Rlimit{Cur: want, Max: max(want, lim.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next); err != nil {
		next = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next)
	}
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur < want {
		log.Info("open-file limit is below --max-conns: connections past it will be refused; raise it with ulimit -n", "limit", lim.Cur, "max_conns", maxConns)
	}
}
