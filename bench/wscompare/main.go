// Command wscompare compares Go WebSocket server libraries for idle-connection
// memory and echo throughput.
//
// The parent process is the load generator (one client implementation, gws,
// for every server so the comparison is fair). For each run it starts the
// server under test as a child process of its own binary ("-role server"), so
// the child's VmRSS and CPU time belong to the server alone.
//
// Everything talks only to loopback addresses, and every run is bounded in
// connection count and wall time.
package main

import (
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"
)

// libs lists the server variants, in the order they are reported.
var libs = []string{"nbio", "nbio-std", "gws", "coder", "gorilla", "gorilla-lean", "gobwas"}

func main() {
	var (
		role      = flag.String("role", "client", "client (default; runs a benchmark) or server (internal: the child)")
		lib       = flag.String("lib", "nbio", "server library: one of nbio, nbio-std, gws, coder, gorilla, gorilla-lean, gobwas")
		mode      = flag.String("mode", "idle", "idle or throughput")
		n         = flag.Int("n", 10000, "connections (idle mode; throughput mode defaults to 1000 via -tn)")
		tn        = flag.Int("tn", 1000, "connections in throughput mode")
		settle    = flag.Duration("settle", 5*time.Second, "idle mode: wait after the last connect before measuring")
		duration  = flag.Duration("d", 10*time.Second, "throughput mode: measured interval")
		warmup    = flag.Duration("warmup", 2*time.Second, "throughput mode: unmeasured interval before -d")
		window    = flag.Int("window", 8, "throughput mode: messages in flight per connection")
		size      = flag.Int("size", 64, "throughput mode: message size in bytes")
		dialers   = flag.Int("dialers", 64, "concurrent dialing goroutines")
		perSrc    = flag.Int("per-src", 20000, "connections per 127.0.0.x source address")
		srcBase   = flag.Int("src-base", 10, "first source address is 127.0.0.<src-base>")
		pin       = flag.Bool("pin", true, "pin the server to CPU 0 (taskset -c 0, GOMAXPROCS=1) and this client to CPU 1")
		out       = flag.String("out", "", "append a JSON line with the result to this file")
		summarize = flag.String("summarize", "", "print a markdown table from a results file written with -out, then exit")
		maxOther  = flag.Float64("max-other", 0.3, "-summarize: leave out throughput runs during which other work used more than this many cores")
		maxLife   = flag.Duration("max-life", 10*time.Minute, "server role: exit after this long no matter what")
	)
	flag.Parse()

	if *summarize != "" {
		if err := summarizeFile(*summarize, *maxOther); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}

	if err := raiseNoFile(); err != nil {
		fmt.Fprintln(os.Stderr, "raise RLIMIT_NOFILE:", err)
	}

	switch *role {
	case "server":
		runServer(*lib, *maxLife)
	case "client":
		if !validLib(*lib) {
			fmt.Fprintf(os.Stderr, "unknown -lib %q; want one of %v\n", *lib, libs)
			os.Exit(2)
		}
		if *pin {
			pinSelf() // re-execs under taskset -c 1 unless already done
		}
		cfg := runConfig{
			lib: *lib, mode: *mode, n: *n, settle: *settle, duration: *duration,
			warmup: *warmup, window: *window, size: *size, dialers: *dialers,
			perSrc: *perSrc, srcBase: *srcBase, pin: *pin, out: *out,
		}
		if *mode == "throughput" {
			cfg.n = *tn
		}
		if err := run(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown -role %q\n", *role)
		os.Exit(2)
	}
}

func validLib(l string) bool {
	for _, x := range libs {
		if x == l {
			return true
		}
	}
	return false
}

// raiseNoFile lifts the soft and (when allowed, e.g. as root) hard
// RLIMIT_NOFILE so that 50k+ sockets fit in one process.
func raiseNoFile() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	const want = 200000
	if lim.Cur >= want {
		return nil
	}
	next := lim
	next.Cur = want
	if next.Max < want {
		next.Max = want
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next); err != nil {
		// Not privileged: settle for the hard limit.
		lim.Cur = lim.Max
		return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return nil
}

// pinSelf re-executes this binary under "taskset -c 1" with GOMAXPROCS=1,
// so that the client (load generator) runs on the other core from the server.
func pinSelf() {
	if os.Getenv("WSCOMPARE_PINNED") == "1" {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pin: cannot find own executable:", err)
		return
	}
	taskset, err := lookTaskset()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pin: taskset not found, running unpinned:", err)
		return
	}
	env := append(os.Environ(), "WSCOMPARE_PINNED=1", "GOMAXPROCS=1")
	args := append([]string{"taskset", "-c", "1", exe}, os.Args[1:]...)
	err = syscall.Exec(taskset, args, env)
	fmt.Fprintln(os.Stderr, "pin: exec taskset failed, running unpinned:", err)
}

func lookTaskset() (string, error) {
	for _, p := range []string{"/usr/bin/taskset", "/bin/taskset", "/usr/local/bin/taskset"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no taskset in /usr/bin, /bin, /usr/local/bin")
}
